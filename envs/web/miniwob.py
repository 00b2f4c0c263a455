"""MiniWoB++: every task page shipped in the `miniwob` package, each registered as its own env id.

An episode opens the task's page (file://, the only thing its allowlist admits), seeds the page's own
random generator (`Math.seedrandom`, as MiniWoB's gym does), starts it with `core.startEpisodeReal()`, and
is rewarded by the page's own JavaScript: the raw reward it reports when it ends the episode (in [-1, 1];
success when positive). The page's 10-second timer is lifted to `episode_seconds`, since a language
model takes longer per action than MiniWoB's scripted agents.

Observation: the instruction (`core.getUtterance()`) and the task area as text with element ids, and
optionally a screenshot; actions: the web actions of `agentenv.envs.web.page`. A reset takes a context
prepared in the background with the task page already loaded, so it costs the seeding and start only.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

from agentenv.envs.web.browser import AllowList
from agentenv.envs.web.browser_env import SYSTEM_PROMPT, BrowserEnv, shared_runtime
from agentenv.envs.web.page import evaluate_settled
from agentenv.messages import Observation

__all__ = ["SYSTEM_PROMPT", "MiniWoBEnv", "env_id", "register_miniwob", "shared_runtime", "task_names"]

STATE_JS = ("() => ({done: WOB_DONE_GLOBAL, reward: WOB_REWARD_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL, "
            "reason: WOB_REWARD_REASON, ready: WOB_TASK_READY})")


@functools.cache
def pages_dir() -> Path:
    """The task pages of the `miniwob` package, found without importing it (it pulls in Selenium)."""
    spec = importlib.util.find_spec("miniwob")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("MiniWoB++ needs the `miniwob` package: pip install 'agentenv[web]'")
    return Path(next(iter(spec.submodule_search_locations))) / "html" / "miniwob"


def task_names() -> list[str]:
    try:
        return sorted(p.stem for p in pages_dir().glob("*.html"))
    except ImportError:
        return []


def env_id(task: str) -> str:
    return "agentenv/MiniWoB-" + "".join(part.capitalize() for part in task.split("-")) + "-v0"


class MiniWoBEnv(BrowserEnv):
    """Options: `task` (a page name, see `task_names()`), `max_turns`, `episode_seconds`, `screenshot`."""

    viewport = (500, 400)
    # The task area and whatever the task adds to the body (jQuery UI dialogs), without the instruction
    # (shown as the task line) and MiniWoB's own chrome: its start cover, click canvas and score display.
    text_skip = "#query, #sync-task-cover, #click-canvas, #reward-display"

    def __init__(self, task: str, max_turns: int = 10, episode_seconds: float = 600.0, **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        self.task = task
        self.page_path = pages_dir() / f"{task}.html"
        if not self.page_path.exists():
            raise ValueError(f"no MiniWoB++ task {task!r}; see agentenv.envs.web.miniwob.task_names()")
        self.episode_seconds = episode_seconds
        self.allow = AllowList(file_roots=(str(pages_dir().parent),))
        self.utterance = ""

    def task_line(self) -> str:
        return f"Task: {self.utterance}"

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self._close_session(wait=False)
        seed = int(self.np_random.integers(2**31 - 1))
        view = self.browser.call(self._then_view(self._start(seed)), timeout=60)
        return self._first_observation(view), {"task_type": self.task, "utterance": self.utterance,
                                               "page_seed": seed}

    async def _start(self, seed: int) -> None:
        await self._open(self.allow, self.page_path.as_uri(), preloaded=True)
        assert self.session is not None
        page = self.session.page
        started = await self.session.guarded(page.evaluate(
            f"() => {{ core.EPISODE_MAX_TIME = {int(self.episode_seconds * 1000)}; Math.seedrandom({seed}); "
            "core.startEpisodeReal(); return WOB_TASK_READY ? core.getUtterance() : null; }"))
        if started is None:  # a task that gets ready asynchronously
            await self.session.guarded(page.wait_for_function("() => WOB_TASK_READY", timeout=10_000))
            started = await self.session.guarded(page.evaluate("() => core.getUtterance()"))
        self.utterance = str(started)

    async def _episode_state(self) -> dict[str, Any]:
        """The page's own verdict; an agent that navigated away from the task page (go_back() to the blank
        page it was loaded from, a link out) has failed the task, as MiniWoB++ scores a wrong answer."""
        assert self.session is not None
        page = self.session.page
        if page.url.partition("#")[0] != self.page_path.as_uri():
            return {"done": True, "raw": -1.0, "reason": f"left the task page for {page.url[:200]}"}
        return dict(await evaluate_settled(page, STATE_JS))

    def _score(self, state: dict[str, Any]) -> tuple[float, bool, dict[str, Any]]:
        done = bool(state.get("done"))
        reward = float(state.get("raw") or 0.0) if done else 0.0
        return reward, done, {"won": done and reward > 0, "reason": state.get("reason")}


    async def _expert(self) -> str | None:
        """The scripted solution's next action, for the tasks that have one (`miniwob_scripts`)."""
        from agentenv.envs.web.miniwob_scripts import next_action

        return next_action(self.task, self.utterance, self.page_text)


def register_miniwob() -> None:
    """Register one env id per task page, when the `miniwob` package is installed."""
    from agentenv.registry import register

    if os.environ.get("AGENTENV_SKIP_MINIWOB") == "1":
        return
    for task in task_names():
        register(env_id(task), "agentenv.envs.web.miniwob:MiniWoBEnv", family="web",
                 description=f"MiniWoB++ {task}: rewarded by the page's own JavaScript.", kwargs={"task": task})
