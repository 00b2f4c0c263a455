"""What every browser environment shares: an episode's session, its observation and its actions.

An episode gets its own browser context from the process's shared runtime (a warm one when the runtime
has it ready), so episodes never share cookies or storage. The observation is the task line and the page
as text with element ids, optionally with a screenshot as an image part (the OpenAI image format, for
vision-language policies); the actions are the web actions of `agentenv.envs.web.page`. Subclasses say
how an episode starts, how it is scored and what the agent is told; the GUI envs (`agentenv.envs.gui`)
replace the observation and the actions with pixels.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from agentenv.env import Env, StepResult
from agentenv.envs.web.browser import AllowList, BrowserRuntime, BrowserSession
from agentenv.envs.web.page import (
    ACTIONS,
    WebAction,
    WebActionError,
    observe,
    parse_web_action,
    perform,
)
from agentenv.messages import Content, Observation, image_part, message, observation, text_part
from agentenv.parsing import ActionParseError, ParsedAction

SYSTEM_PROMPT = (
    "You control a web page to complete a task. The page is shown as text: each element you can act on "
    "has an id in brackets, like [12]. Act with exactly one of: " + ", ".join(f"{n}(...)" for n in ACTIONS)
    + ". For example: click(12), fill(7, \"hello\"), select_option(3, \"Blue\"), press(\"Enter\"). "
    "Write the action on the last line of your reply."
)

_runtime_lock = threading.Lock()
_runtime: BrowserRuntime | None = None


def shared_runtime() -> BrowserRuntime:
    """One browser per process for all web and GUI episodes (each gets its own context)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = BrowserRuntime()
        return _runtime


PAGE_HEADER = "\n\nPage:\n"


def page_message(error: str | None, task: str, page: str) -> str:
    """The text of a web observation: the error of the last action if any, the task line, the page."""
    feedback = f"Error: {error}\n\n" if error else ""
    return f"{feedback}{task}{PAGE_HEADER}{page}"


def split_page_message(text: str, task: str | None = None) -> tuple[str | None, str, str]:
    """(error, task line, page) of a web observation's text (``task``, when known, tells an error that spans
    paragraphs from the task line); raises ValueError on another message."""
    head, sep, page = text.partition(PAGE_HEADER)
    if not sep:
        raise ValueError("not a web page observation (no `Page:` section)")
    if task is not None and head.endswith(task) and head != task:
        return head[len("Error: "):-len(task) - 2], task, page
    error = None
    if head.startswith("Error: ") and "\n\n" in head:
        error, _, head = head[len("Error: "):].partition("\n\n")
    return error, head, page


_ELEMENT_LINE = re.compile(r'^\s*\[(\d+)\] (\S+) ("(?:[^"\\]|\\.)*")(.*)$')


def page_candidates(page: str, task: str) -> list[str]:
    """The actions on a page's elements that a random agent chooses among (see ``action_candidates``)."""
    task = task.partition(": ")[2] or task
    quoted = re.findall(r'"([^"]{1,40})"', task)
    words = list(dict.fromkeys([*quoted, *re.findall(r"[A-Za-z0-9]{3,}", task)[:4]]))[:5] or ["test"]
    found: list[str] = []
    for line in page.split("\n"):
        match = _ELEMENT_LINE.match(line)
        if not match:
            continue
        element, role, rest = int(match.group(1)), match.group(2), match.group(4)
        if role in ("textbox", "searchbox"):
            found += [f"fill({element}, {json.dumps(w)})" for w in words]
        elif role == "combobox":
            options = re.findall(r'\*?("(?:[^"\\]|\\.)*")', rest.partition("options=")[2])
            found += [f"select_option({element}, {o})" for o in options]
        else:
            found.append(f"click({element})")
    return [*found, 'press("Enter")', "scroll(0, 400)", "go_back()"]


@dataclass
class PageView:
    """The page as the agent sees it after an action."""

    text: str
    png: bytes | None = None


class BrowserEnv(Env):
    """Base of the browser envs; see the module docstring. Options: `screenshot` adds the page's image."""

    family = "web"
    system_prompt = SYSTEM_PROMPT
    #: the browser window's size in CSS pixels (also the screenshot's size)
    viewport: tuple[int, int] = (1024, 768)
    #: the CSS selector of the part of the page shown as text (None: the whole body)
    text_root: str | None = None
    #: a CSS selector of elements left out of the text (None: nothing)
    text_skip: str | None = None

    @classmethod
    def node_resources(cls, kwargs: dict[str, Any]) -> dict[str, float]:
        return {"chromium": 1}

    def __init__(self, *, screenshot: bool = False, runtime: BrowserRuntime | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.screenshot = screenshot
        self.runtime = runtime
        self.session: BrowserSession | None = None
        #: the page as text at the last observation (what the text agent saw; experts read it too)
        self.page_text = ""

    @property
    def browser(self) -> BrowserRuntime:
        if self.runtime is None:
            self.runtime = shared_runtime()
        return self.runtime

    # ---- what subclasses provide --------------------------------------------------------------------

    def task_line(self) -> str:
        """The task as the agent reads it above the page (`Task: ...`)."""
        raise NotImplementedError

    async def _episode_state(self) -> dict[str, Any]:
        """Read on the browser's loop right after each action (the page's own score, for MiniWoB)."""
        return {}

    def _score(self, state: dict[str, Any]) -> tuple[float, bool, dict[str, Any]]:
        """(reward, episode over, info) from the state read after an action."""
        raise NotImplementedError

    def public_url(self, url: str) -> str:
        """The URL as shown to the agent."""
        return url

    async def _expert(self) -> str | None:
        """The expert's next action, computed on the browser's loop (None: no expert for this task)."""
        return None

    def expert_action(self) -> str | None:
        if self.session is None:
            return None
        return self.browser.call(self._expert(), timeout=30)

    def action_candidates(self) -> list[str] | None:
        """A random agent's choices: click each element, fill each textbox with a word of the task, pick
        each option of each list, and press Enter, scroll or go back."""
        if self.session is None:
            return None
        return page_candidates(self.page_text, self.task_line() if self.page_text else "")

    # ---- the session ----------------------------------------------------------------------------------

    async def _open(self, allow: AllowList, url: str, *, preloaded: bool) -> None:
        """Start the episode's session at `url`; `preloaded` lets a warm session arrive already there."""
        self.session = await self.browser.open_session(allow, viewport=self.viewport,
                                                       url=url if preloaded else None)
        if not preloaded:
            await self.session.guarded(self.session.page.goto(url))

    async def _then_view(self, start: Any) -> PageView:
        """Await `start` (an episode's set-up) and return the first view, in one trip to the browser loop."""
        await start
        return await self._view()

    def _close_session(self, wait: bool = True) -> None:
        """Close the episode's context; a reset does not `wait` (the browser's loop finishes it)."""
        if self.session is not None:
            session, self.session = self.session, None
            if wait:
                self.browser.call(session.close(), timeout=10)
            else:
                self.browser.submit(session.close())

    def _close(self) -> None:
        self._close_session()

    # ---- observing ------------------------------------------------------------------------------------

    async def _view(self) -> PageView:
        assert self.session is not None
        page = self.session.page
        text = await self.session.guarded(observe(page, root=self.text_root, skip=self.text_skip))
        png = await self.session.guarded(self.session.screenshot()) if self.screenshot else None
        self.page_text = f"URL: {self.public_url(page.url)}\n{text}"
        return PageView(self.page_text, png)

    def _content(self, view: PageView, error: str | None) -> Content:
        text = page_message(error, self.task_line(), view.text)
        return [text_part(text), image_part(view.png)] if view.png is not None else text

    def _first_observation(self, view: PageView) -> Observation:
        return observation(message("system", self.system_prompt), message("user", self._content(view, None)))

    # ---- acting ---------------------------------------------------------------------------------------

    def parse_action(self, text: str) -> ParsedAction:
        try:
            action = parse_web_action(text)
        except WebActionError as exc:
            raise ActionParseError(str(exc)) from exc
        if action.name == "answer":
            raise ActionParseError("answer() is not used in this task: act on the page")
        return ParsedAction(text=text, command=str(action))

    def _step(self, action: ParsedAction) -> StepResult:
        error, state, view = self.browser.call(self._act(action.command or ""), timeout=60)
        reward, over, info = self._score(state)
        return StepResult(observation(message("user", self._content(view, error))), reward, terminated=over,
                          info={**info, "error": error})

    async def _act(self, command: str) -> tuple[str | None, dict[str, Any], PageView]:
        assert self.session is not None
        error = None
        try:
            await self.session.guarded(self._perform(command))
        except WebActionError as exc:
            error = str(exc)
        return error, await self.session.guarded(self._episode_state()), await self._view()

    async def _perform(self, command: str) -> None:
        assert self.session is not None
        action: WebAction = parse_web_action(command)
        await perform(self.session.page, action, allowed=self.session.allow)
        stalled = await self.session.settle()
        if stalled:
            raise WebActionError(stalled)
