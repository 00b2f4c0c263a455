"""MiniWoB++: every task page shipped in the `miniwob` package, each registered as its own env id.

An episode opens the task's page (file://, the only thing its allowlist admits), seeds the page's own
random generator (`Math.seedrandom`, as MiniWoB's gym does), starts it with `core.startEpisodeReal()`, and
is rewarded by the page's own JavaScript: the raw reward it reports when it ends the episode (in [-1, 1];
success when positive). The page's 10-second timer is lifted to `episode_seconds`, since a language
model takes longer per action than MiniWoB's scripted agents.

Observation: the instruction (`core.getUtterance()`) and the task area as text with element ids;
actions: the web actions of `agentenv.envs.web.page`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from agentenv.env import Env, StepResult
from agentenv.envs.web.browser import AllowList, BrowserRuntime, BrowserSession
from agentenv.envs.web.page import ACTIONS, WebAction, WebActionError, observe, parse_web_action, perform
from agentenv.messages import Observation, message, observation
from agentenv.parsing import ActionParseError, ParsedAction

SYSTEM_PROMPT = (
    "You control a web page to complete a task. The page is shown as text: each element you can act on "
    "has an id in brackets, like [12]. Act with exactly one of: " + ", ".join(f"{n}(...)" for n in ACTIONS)
    + ". For example: click(12), fill(7, \"hello\"), select_option(3, \"Blue\"), press(\"Enter\"). "
    "Write the action on the last line of your reply."
)
STATE_JS = ("() => ({done: WOB_DONE_GLOBAL, reward: WOB_REWARD_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL, "
            "reason: WOB_REWARD_REASON, ready: WOB_TASK_READY})")

_runtime_lock = threading.Lock()
_runtime: BrowserRuntime | None = None


def shared_runtime() -> BrowserRuntime:
    """One browser per process for all web episodes (each gets its own context)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = BrowserRuntime()
        return _runtime


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


class MiniWoBEnv(Env):
    family = "web"

    def __init__(self, task: str, max_turns: int = 10, episode_seconds: float = 600.0,
                 runtime: BrowserRuntime | None = None, **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        self.task = task
        self.page_path = pages_dir() / f"{task}.html"
        if not self.page_path.exists():
            raise ValueError(f"no MiniWoB++ task {task!r}; see agentenv.envs.web.miniwob.task_names()")
        self.episode_seconds = episode_seconds
        self.runtime = runtime
        self.allow = AllowList(file_roots=(str(pages_dir().parent),))
        self.session: BrowserSession | None = None
        self.utterance = ""

    @property
    def browser(self) -> BrowserRuntime:
        if self.runtime is None:
            self.runtime = shared_runtime()
        return self.runtime

    def _close_session(self) -> None:
        if self.session is not None:
            self.browser.call(self.session.close(), timeout=10)
            self.session = None

    def _close(self) -> None:
        self._close_session()

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self._close_session()
        seed = int(self.np_random.integers(2**31 - 1))
        self.utterance, text = self.browser.call(self._start(seed), timeout=60)
        obs = observation(message("system", SYSTEM_PROMPT), f"Task: {self.utterance}\n\nPage:\n{text}")
        return obs, {"task_type": self.task, "utterance": self.utterance, "page_seed": seed}

    async def _start(self, seed: int) -> tuple[str, str]:
        self.session = await self.browser.open_session(self.allow, viewport=(500, 400))
        page = self.session.page
        await self.session.guarded(page.goto(self.page_path.as_uri()))
        await self.session.guarded(page.evaluate(
            f"() => {{ core.EPISODE_MAX_TIME = {int(self.episode_seconds * 1000)}; Math.seedrandom({seed}); "
            "core.startEpisodeReal(); }"))
        await self.session.guarded(page.wait_for_function("() => WOB_TASK_READY", timeout=10_000))
        utterance = await self.session.guarded(page.evaluate("() => core.getUtterance()"))
        return str(utterance), await self._observe()

    async def _observe(self) -> str:
        assert self.session is not None
        text = await self.session.guarded(observe(self.session.page, root="#area"))
        return f"URL: {self.session.page.url}\n{text}"

    def parse_action(self, text: str) -> ParsedAction:
        try:
            action = parse_web_action(text)
        except WebActionError as exc:
            raise ActionParseError(str(exc)) from exc
        return ParsedAction(text=text, command=str(action))

    def _step(self, action: ParsedAction) -> StepResult:
        parsed = parse_web_action(action.command or "")
        if parsed.name == "answer":
            return StepResult(observation("answer() is not used in MiniWoB++ tasks: act on the page."),
                              info={"action_valid": False})
        error, state, text = self.browser.call(self._act(parsed), timeout=60)
        done = bool(state.get("done"))
        reward = float(state.get("raw") or 0.0) if done else 0.0
        feedback = f"Error: {error}\n\n" if error else ""
        obs = observation(f"{feedback}Task: {self.utterance}\n\nPage:\n{text}")
        return StepResult(obs, reward, terminated=done,
                          info={"won": done and reward > 0, "reason": state.get("reason"), "error": error})

    async def _act(self, action: WebAction) -> tuple[str | None, dict, str]:
        assert self.session is not None
        error = None
        try:
            await self.session.guarded(perform(self.session.page, action, allowed=self.allow))
        except WebActionError as exc:
            error = str(exc)
        state = await self.session.guarded(self.session.page.evaluate(STATE_JS))
        return error, state, await self._observe()


def register_miniwob() -> None:
    """Register one env id per task page, when the `miniwob` package is installed."""
    from agentenv.registry import register

    if os.environ.get("AGENTENV_SKIP_MINIWOB") == "1":
        return
    for task in task_names():
        register(env_id(task), "agentenv.envs.web.miniwob:MiniWoBEnv", family="web",
                 description=f"MiniWoB++ {task}: rewarded by the page's own JavaScript.", kwargs={"task": task})
