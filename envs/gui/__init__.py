"""GUI environments: tasks seen as screenshots and acted on with pixel coordinates, keys and text.

`web` holds the browser tasks at the pixel level; `desktop` runs programs on a virtual X display.
Registration lives here so that listing env ids imports neither.
"""

from __future__ import annotations

import os

from agentenv.envs.web.miniwob import env_id, task_names


def gui_env_id(task: str) -> str:
    return env_id(task).replace("agentenv/MiniWoB-", "agentenv/GUI-MiniWoB-")


def register_gui_web() -> None:
    """One pixel-level id per MiniWoB++ task, and the store's."""
    from agentenv.registry import register

    if os.environ.get("AGENTENV_SKIP_MINIWOB") == "1":
        return
    register("agentenv/GUI-WebShop-v0", "agentenv.envs.gui.web:GuiWebShopEnv", family="gui",
             description="The store (WebShop-v0) as screenshots, driven by mouse and keyboard.")
    for task in task_names():
        register(gui_env_id(task), "agentenv.envs.gui.web:GuiMiniWoBEnv", family="gui",
                 description=f"MiniWoB++ {task} as screenshots, driven by mouse and keyboard.",
                 kwargs={"task": task})
