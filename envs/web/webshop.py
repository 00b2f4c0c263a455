"""The WebShop-style store as a browser environment: find and buy the product an instruction asks for.

The store (`envs/web/store`) is served once per process on 127.0.0.1 by uvicorn, each episode gets its
own store session and its own browser context, and the context may load nothing but the store. The
reward is the store's WebShop reward of the purchase (in [0, 1]); the episode ends with the purchase.
The expert asks the store's planner for the next step from the page it is on, so it can take over
after any mistake of the student (DAgger).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from agentenv.env import Env, StepResult
from agentenv.envs.web.browser import AllowList, BrowserRuntime, BrowserSession
from agentenv.envs.web.miniwob import SYSTEM_PROMPT, shared_runtime
from agentenv.envs.web.page import WebAction, WebActionError, observe, parse_web_action, perform
from agentenv.envs.web.store import build_catalog, goals
from agentenv.envs.web.store.app import create_app, option_id
from agentenv.envs.web.store.expert import next_step
from agentenv.messages import Observation, message, observation
from agentenv.parsing import ActionParseError, ParsedAction

STATE_JS = """() => {
  const path = location.pathname;
  const page = path === '/' ? 'home' : path.startsWith('/search') ? 'search'
    : path.startsWith('/item/') ? 'item' : path.startsWith('/buy') ? 'done' : 'other';
  return {page, asin: page === 'item' ? decodeURIComponent(path.slice(6)) : null,
          results: [...document.querySelectorAll('a.result')].map(a => a.dataset.asin),
          selected: [...document.querySelectorAll('a.option.selected')].map(a => a.id),
          query: (document.getElementById('search-input') || {}).value || ''};
}"""
ID_OF_JS = "(domId) => { const el = document.getElementById(domId); return el && el.getAttribute('data-agentenv-id'); }"
ID_OF_RESULT_JS = """(asin) => {
  const el = [...document.querySelectorAll('a.result')].find(a => a.dataset.asin === asin);
  return el && el.getAttribute('data-agentenv-id'); }"""


def public_url(url: str) -> str:
    """The page's URL as the agent sees it: without the store's session id, which says nothing about the
    task and would make two episodes of the same seed look different."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "session"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class StoreServer:
    """The store's web app on a free loopback port, in a thread, for the life of the process."""

    _instance: StoreServer | None = None
    _lock = threading.Lock()

    def __init__(self, seed: int = 0) -> None:
        import uvicorn

        self.catalog = build_catalog(seed=seed)
        self.splits = {split: goals(split, seed=seed, catalog=self.catalog) for split in ("train", "test")}
        self.offsets = {"train": 0, "test": len(self.splits["train"])}
        app = create_app(self.catalog, [*self.splits["train"], *self.splits["test"]])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the store did not start")
            time.sleep(0.01)
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base, timeout=10)

    @classmethod
    def shared(cls) -> StoreServer:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


class WebShopEnv(Env):
    """Options: `split` ("train" or "test" instructions), `max_turns`."""

    family = "web"

    def __init__(self, split: str = "train", max_turns: int = 15, runtime: BrowserRuntime | None = None,
                 **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.split = split
        self.runtime = runtime
        self.store: StoreServer | None = None
        self.session: BrowserSession | None = None
        self.store_session = ""
        self.goal: Any = None
        self.instruction = ""

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
        self.store = StoreServer.shared()
        pool = self.store.splits[self.split]
        index = int((options or {}).get("goal_index", self.np_random.integers(len(pool))))
        self.goal = pool[index]
        created = self.store.http.post("/api/session", json={"goal_index": self.store.offsets[self.split] + index})
        created.raise_for_status()
        self.store_session = created.json()["session"]
        self.instruction = self.goal.instruction
        allow = AllowList(hosts=frozenset({f"127.0.0.1:{self.store.port}"}))
        text = self.browser.call(self._open(allow, self.store.base + created.json()["url"]), timeout=60)
        obs = observation(message("system", SYSTEM_PROMPT), self._render(text, None))
        return obs, {"task_type": self.goal.category, "instruction": self.instruction, "split": self.split,
                     "goal_index": index, "asin": self.goal.asin}

    async def _open(self, allow: AllowList, url: str) -> str:
        self.session = await self.browser.open_session(allow)
        await self.session.guarded(self.session.page.goto(url))
        return await self._page_text()

    async def _page_text(self) -> str:
        assert self.session is not None
        text = await self.session.guarded(observe(self.session.page, root="body"))
        return f"URL: {public_url(self.session.page.url)}\n{text}"

    def _render(self, text: str, error: str | None) -> str:
        feedback = f"Error: {error}\n\n" if error else ""
        return f"{feedback}Instruction: {self.instruction}\n\nPage:\n{text}"

    def parse_action(self, text: str) -> ParsedAction:
        try:
            action = parse_web_action(text)
        except WebActionError as exc:
            raise ActionParseError(str(exc)) from exc
        return ParsedAction(text=text, command=str(action))

    def _step(self, action: ParsedAction) -> StepResult:
        parsed = parse_web_action(action.command or "")
        if parsed.name == "answer":
            return StepResult(observation("answer() is not used here: buy the product with the Buy Now button."),
                              info={"action_valid": False})
        error, text = self.browser.call(self._act(parsed), timeout=60)
        assert self.store is not None
        result = self.store.http.get(f"/api/result/{self.store_session}").json()
        done = bool(result["bought"])
        reward = float(result["reward"]) if done else 0.0
        return StepResult(observation(self._render(text, error)), reward, terminated=done,
                          info={"won": done and reward >= 1.0, "error": error, "bought": result.get("asin"),
                                "reward_parts": result.get("parts")})

    async def _act(self, action: WebAction) -> tuple[str | None, str]:
        assert self.session is not None
        error = None
        try:
            await self.session.guarded(perform(self.session.page, action, allowed=self.session.allow))
        except WebActionError as exc:
            error = str(exc)
        return error, await self._page_text()

    def expert_action(self) -> str | None:
        if self.session is None or self.store is None:
            return None
        return self.browser.call(self._expert(), timeout=30)

    async def _expert(self) -> str | None:
        assert self.session is not None and self.store is not None
        page = self.session.page
        state = await self.session.guarded(page.evaluate(STATE_JS))
        if state["page"] == "item" and state["asin"]:
            product = next((p for p in self.store.catalog if p.asin == state["asin"]), None)
            chosen = {}
            for group, values in (product.options.items() if product else ()):
                for value in values:
                    if option_id(group, value) in state["selected"]:
                        chosen[group] = value
            state["options"] = chosen
        step = next_step(self.goal, self.store.catalog, state)
        if step is None:
            return None

        async def element(dom_id: str) -> str | None:
            return await page.evaluate(ID_OF_JS, dom_id)

        kind = step[0]
        if kind == "search":
            if state["query"] != step[1]:
                target = await element("search-input")
                return f"fill({target}, {step[1]!r})" if target else None
            target = await element("search-button")
        elif kind == "click_result":
            target = await page.evaluate(ID_OF_RESULT_JS, step[1])
        elif kind == "choose_option":
            target = await element(option_id(step[1], step[2]))
        elif kind == "buy":
            target = await element("buy-now")
        else:
            target = await element("back-to-search")
        return f"click({target})" if target else None
