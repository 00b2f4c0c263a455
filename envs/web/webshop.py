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

from agentenv.envs.web.browser import AllowList
from agentenv.envs.web.browser_env import BrowserEnv
from agentenv.envs.web.page import evaluate_settled
from agentenv.envs.web.store import build_catalog, goals
from agentenv.envs.web.store.app import create_app, option_id
from agentenv.envs.web.store.expert import next_step
from agentenv.messages import Observation

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


class WebShopEnv(BrowserEnv):
    """Options: `split` ("train" or "test" instructions), `max_turns`, `screenshot`."""

    def __init__(self, split: str = "train", max_turns: int = 15, **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.split = split
        self.store: StoreServer | None = None
        self.store_session = ""
        self.goal: Any = None
        self.instruction = ""

    def task_line(self) -> str:
        return f"Instruction: {self.instruction}"

    def public_url(self, url: str) -> str:
        return public_url(url)

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self._close_session(wait=False)
        self.store = StoreServer.shared()
        pool = self.store.splits[self.split]
        index = int((options or {}).get("goal_index", self.np_random.integers(len(pool))))
        self.goal = pool[index]
        created = self.store.http.post("/api/session", json={"goal_index": self.store.offsets[self.split] + index})
        created.raise_for_status()
        self.store_session = created.json()["session"]
        self.instruction = self.goal.instruction
        allow = AllowList(hosts=frozenset({f"127.0.0.1:{self.store.port}"}))
        url = self.store.base + created.json()["url"]
        view = self.browser.call(self._then_view(self._open(allow, url, preloaded=False)), timeout=60)
        return self._first_observation(view), {"task_type": self.goal.category, "instruction": self.instruction,
                                               "split": self.split, "goal_index": index, "asin": self.goal.asin}

    def _score(self, state: dict[str, Any]) -> tuple[float, bool, dict[str, Any]]:
        assert self.store is not None
        result = self.store.http.get(f"/api/result/{self.store_session}").json()
        done = bool(result["bought"])
        reward = float(result["reward"]) if done else 0.0
        return reward, done, {"won": done and reward >= 1.0, "bought": result.get("asin"),
                              "reward_parts": result.get("parts")}

    async def _expert(self) -> str | None:
        assert self.session is not None and self.store is not None
        page = self.session.page
        state = await self.session.guarded(evaluate_settled(page, STATE_JS))
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
