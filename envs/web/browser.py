"""Chromium through Playwright, shared by the web and GUI environments.

One browser process serves many episodes, each in its own context (cookies, storage and cache are not
shared). Pages reach only the hosts an episode allows: every request is checked by a route handler, and
the rest are aborted and recorded (reliability A25, A26, I14). Dialogs are dismissed, popups closed and
downloads refused. Every operation has a deadline; a browser that crashes or hangs is detected, the
affected sessions raise `BrowserCrashed` with the reason, and the next session starts a fresh browser.

The browser runs on an asyncio loop in a thread of its own, so environments can use it from synchronous
code (`runtime.call(coro)`) and from the collector's event loop (`await runtime.acall(coro)`) alike.

Chromium is found in this order: `$AGENTENV_CHROMIUM`, Playwright's own download (where `playwright
install chromium` worked), then the system's (`chromium`, `chromium-browser`, `google-chrome`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions", "--mute-audio",
    "--disable-dev-shm-usage", "--disable-quic", "--dns-prefetch-disable",
    # Re-rasterizing only the changed part of a tile blends anti-aliased edges (a focus ring's corners) one
    # level off now and then under load, so two screenshots of the same state differed and seeded GUI
    # episodes did not replay.
    "--disable-partial-raster",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",  # no STUN packets around the allowlist
]
#: Dialogs answered inside the page: an alert loop would otherwise stall the renderer on every round trip
#: to the host that dismisses it (the host still dismisses any that get through, such as beforeunload).
NO_DIALOGS_JS = "window.alert = () => undefined; window.confirm = () => false; window.prompt = () => null;"
#: A blinking caret would make two screenshots of the same state differ (and seeded episodes irreproducible).
NO_CARET_JS = """document.addEventListener('DOMContentLoaded', () => {
  const style = document.createElement('style');
  style.textContent = '* { caret-color: transparent !important; }';
  document.head.appendChild(style);
});"""
SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserUnavailable(RuntimeError):
    """No Chromium (or no Playwright) on this machine; says how to get one."""


class BrowserCrashed(RuntimeError):
    """The browser or the page crashed or hung; the episode cannot go on in this session."""


def find_chromium() -> str:
    explicit = os.environ.get("AGENTENV_CHROMIUM")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise BrowserUnavailable(f"AGENTENV_CHROMIUM={explicit} is not an executable")
        return explicit
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache" / "ms-playwright"))
    for candidate in sorted(cache.glob("chromium-*/chrome-linux*/chrome"), reverse=True):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    for name in SYSTEM_BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserUnavailable(
        "no Chromium found: apt-get install chromium (or `playwright install chromium`), "
        "or point AGENTENV_CHROMIUM at a Chromium binary"
    )


@dataclass(frozen=True)
class AllowList:
    """What pages of an episode may load: exact hosts (with port when given), and file:// under roots.

    Empty means nothing but `about:blank`: a missing allowlist denies, it never allows everything.
    """

    hosts: frozenset[str] = frozenset()
    file_roots: tuple[str, ...] = ()

    def allows(self, url: str) -> bool:
        if url in ("about:blank", "about:srcdoc"):
            return True
        parts = urlsplit(url)
        if parts.scheme == "file":
            path = os.path.realpath(parts.path)
            return any(path == root or path.startswith(root.rstrip("/") + "/") for root in self.file_roots)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname:
            host = parts.hostname.lower()
            return host in self.hosts or f"{host}:{parts.port}" in self.hosts
        return False  # data:, blob:, chrome:, javascript: and anything else are refused

    def checked_urls(self) -> re.Pattern[str]:
        """The URLs that requests are checked for in Python: all but files under the allowed roots, which
        the browser's side of Playwright lets through itself (a page load is then no slower than without
        routing). Chromium normalises `..` out of a URL before requesting it."""
        roots = [re.escape(Path(os.path.realpath(root)).as_uri().rstrip("/") + "/") for root in self.file_roots]
        return re.compile(f"^(?!{'|'.join(roots)})" if roots else "")


#: what makes prepared sessions interchangeable: the allowlist, the viewport and the preloaded url
SessionKey = tuple[AllowList, tuple[int, int], str | None]


@dataclass
class BrowserRuntime:
    """A Chromium process on a private event loop. Thread-safe; one per process is plenty."""

    executable: str | None = None
    headless: bool = True
    op_timeout_s: float = 10.0
    #: sessions prepared ahead of resets, across all tasks (each is an idle context with a page)
    max_spares: int = 4
    #: how long after a reset takes a spare its replacement starts being prepared: not during the reset
    #: itself, whose few milliseconds of work would otherwise queue behind a renderer starting up
    refill_delay_s: float = 0.1
    _loop: asyncio.AbstractEventLoop = field(init=False, repr=False)
    _thread: threading.Thread = field(init=False, repr=False)
    _playwright: Any = field(default=None, init=False, repr=False)
    _browser: Any = field(default=None, init=False, repr=False)
    _marker: str = field(default="", init=False, repr=False)
    restarts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agentenv-browser", daemon=True)
        self._thread.start()
        self._lock = asyncio.Lock()
        self._pool: dict[SessionKey, list[asyncio.Future[BrowserSession | None]]] = {}

    # ---- bridging -------------------------------------------------------------------------------------

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the browser's loop and wait for it (from synchronous code)."""
        return self.submit(coro).result(timeout=(timeout or self.op_timeout_s) + 5)

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await a coroutine on the browser's loop (from another event loop)."""
        return await asyncio.wrap_future(self.submit(coro))

    # ---- the browser ----------------------------------------------------------------------------------

    async def browser(self) -> Any:
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._browser is not None:
                self.restarts += 1
                await self._kill_browser()
            if self._playwright is None:
                try:
                    from playwright.async_api import async_playwright
                except ImportError as exc:
                    raise BrowserUnavailable("the web envs need Playwright: pip install 'agentenv[web]'") from exc
                self._playwright = await async_playwright().start()
            executable = self.executable or find_chromium()
            self._marker = f"--agentenv-browser={uuid.uuid4().hex}"  # finds the process tree to kill
            self._browser = await self._playwright.chromium.launch(
                executable_path=executable, headless=self.headless, args=[*LAUNCH_ARGS, self._marker],
                timeout=60_000,
            )
            return self._browser

    async def _kill_browser(self) -> None:
        await self._drop_spares()
        browser, self._browser = self._browser, None
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), 5)
        if self._marker:
            kill_marked(self._marker)

    def kill_browser_process(self) -> None:
        """SIGKILL the Chromium process tree (tests use it to play a crash)."""
        kill_marked(self._marker)

    async def open_session(self, allow: AllowList, *, viewport: tuple[int, int] = (1024, 768),
                           url: str | None = None, warm: bool = True) -> BrowserSession:
        """A fresh context with one page (at `url` when given) that may load only what `allow` admits.

        With `warm`, a session prepared in the background for the same allowlist, viewport and url is
        handed out when there is one, and another is prepared for the next reset: a reset then costs
        neither the renderer's start nor the page load. Prepared sessions are unused contexts, so an
        episode never sees another's cookies or storage.
        """
        key = (allow, viewport, url)
        browser = await self.browser()
        if warm:
            pool = self._pool.setdefault(key, [])
            while pool:
                session = await pool.pop(0)  # a spare still being prepared is awaited: it has a head start
                if session is not None and session.crashed is None and session.context.browser is browser \
                        and browser.is_connected():
                    self._refill(key, self.refill_delay_s)
                    return session
                if session is not None:
                    await session.close()
            self._refill(key)
        return await self._new_session(browser, key)

    async def _new_session(self, browser: Any, key: SessionKey) -> BrowserSession:
        allow, viewport, url = key
        context = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                            accept_downloads=False, java_script_enabled=True,
                                            service_workers="block")  # a worker's fetches would skip the routes
        session = BrowserSession(self, context, allow)
        try:
            await session.start()
            if url is not None:
                await session.guarded(session.page.goto(url))
        except BaseException:
            await session.close()
            raise
        return session

    def _refill(self, key: SessionKey, delay: float = 0.0) -> None:
        if sum(len(pool) for pool in self._pool.values()) >= self.max_spares:
            return
        self._pool.setdefault(key, []).append(asyncio.ensure_future(self._prepare(key, delay)))

    async def _prepare(self, key: SessionKey, delay: float) -> BrowserSession | None:
        try:
            await asyncio.sleep(delay)
            return await self._new_session(await self.browser(), key)
        except Exception:  # a spare that fails is simply not there; the reset that wanted it opens its own
            return None

    async def _drop_spares(self) -> None:
        pools, self._pool = self._pool, {}
        for spare in (spare for pool in pools.values() for spare in pool):
            spare.cancel()
            with contextlib.suppress(BaseException):
                session = await spare
                if session is not None:
                    await session.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def shutdown() -> None:
            await self._kill_browser()
            if self._playwright is not None:
                with contextlib.suppress(Exception):
                    await self._playwright.stop()
                self._playwright = None

        with contextlib.suppress(Exception):
            self.call(shutdown(), timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():  # its self-pipe and selector would otherwise wait for the collector
            self._loop.close()


def kill_marked(marker: str) -> None:
    if not marker:
        return
    found = subprocess.run(["pgrep", "-f", "--", marker], capture_output=True, text=True, check=False).stdout.split()
    for pid in found:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


class BrowserSession:
    """One episode's context and page, with the allowlist enforced on every request."""

    def __init__(self, runtime: BrowserRuntime, context: Any, allow: AllowList) -> None:
        self.runtime, self.context, self.allow = runtime, context, allow
        self.page: Any = None
        self.blocked: list[str] = []
        self.crashed: str | None = None
        self.tasks: set[asyncio.Future[Any]] = set()
        self._navigation: str | None = None  # the URL the main frame is navigating to, if it is
        self._navigated = asyncio.Event()
        self._cdp: Any = None
        self._main_frame = ""

    async def start(self) -> None:
        await self.context.route(self.allow.checked_urls(), self._route)
        await self.context.route_web_socket("**/*", self._route_websocket)  # WebSockets bypass `route`
        await self.context.add_init_script(NO_DIALOGS_JS + NO_CARET_JS)
        self.context.on("page", self._on_page)
        self.page = await self.context.new_page()
        self.page.on("crash", lambda *_: self._mark("the page crashed"))
        self.page.on("requestfailed", self._on_request_failed)
        self.page.on("domcontentloaded", lambda *_: self._navigation_over())
        self.page.on("download", lambda *_: self._navigation_over())  # a download replaces no document
        self.context.browser.on("disconnected", lambda *_: self._mark("the browser disconnected"))
        # The renderer announces each navigation it starts on the DevTools session, in order with the answers
        # to that session's commands: one round trip after an action tells whether the action started one.
        self._cdp = await self.context.new_cdp_session(self.page)
        await self._cdp.send("Page.enable")
        self._main_frame = (await self._cdp.send("Page.getFrameTree"))["frameTree"]["frame"]["id"]
        self._cdp.on("Page.frameRequestedNavigation", self._on_navigation_requested)
        self._cdp.on("Page.navigatedWithinDocument", self._on_frame_event)
        self._cdp.on("Page.frameStoppedLoading", self._on_frame_event)

    def _on_navigation_requested(self, event: dict[str, Any]) -> None:
        if event.get("frameId") == self._main_frame and event.get("disposition", "currentTab") == "currentTab":
            self._navigation = str(event.get("url", ""))
            self._navigated.clear()

    def _on_frame_event(self, event: dict[str, Any]) -> None:
        if event.get("frameId") == self._main_frame:
            self._navigation_over()

    def _on_request_failed(self, request: Any) -> None:
        if request.is_navigation_request() and request.frame == self.page.main_frame:  # blocked or refused
            self._navigation_over()

    def _navigation_over(self) -> None:
        self._navigation = None
        self._navigated.set()

    async def settle(self, timeout: float = 5.0) -> str | None:
        """Wait for a navigation that the last action started to reach its new document (DOMContentLoaded),
        so the next observation shows one page, not whichever the race left. A navigation that does not
        get there in time is stopped, as a person would press the stop button, and the reason returned."""
        with contextlib.suppress(Exception):  # the next task turn: a form submission's navigation starts then
            await asyncio.wait_for(self._cdp.send("Runtime.evaluate", {
                "expression": "new Promise(resolve => setTimeout(resolve, 0))", "awaitPromise": True}), 1.0)
        url = self._navigation
        if url is None:
            return None
        try:
            await asyncio.wait_for(self._navigated.wait(), timeout)
            return None
        except TimeoutError:
            from agentenv.envs.web.page import stop_loading

            await stop_loading(self.page)
            self._navigation_over()
            return f"{url[:200]} did not load within {timeout:g} s; loading was stopped"

    async def screenshot(self) -> bytes:
        """A PNG of the viewport through the DevTools protocol: no wait for web fonts (Playwright's
        screenshot waits on `document.fonts.ready`, which a navigation can leave pending forever)."""
        for attempt in range(4):
            try:
                shot = await self._cdp.send("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True})
                return base64.b64decode(shot["data"])
            except Exception as exc:
                if attempt == 3 or "closed" in str(exc):
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))  # a frame between two documents cannot be captured
        raise AssertionError("unreachable")

    def _mark(self, why: str) -> None:
        self.crashed = self.crashed or why

    async def _route(self, route: Any) -> None:
        url = route.request.url
        if self.allow.allows(url):
            await route.continue_()
        else:
            self.blocked.append(url)
            await route.abort("blockedbyclient")

    async def _route_websocket(self, socket: Any) -> None:
        if self.allow.allows(socket.url):
            socket.connect_to_server()
        else:
            self.blocked.append(socket.url)
            await socket.close(code=1008, reason="blocked by the task's allowlist")

    def _on_page(self, page: Any) -> None:
        page.on("dialog", lambda dialog: self._background(dialog.dismiss()))
        if self.page is not None and page is not self.page:  # popups and window.open storms
            self._background(page.close())

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def guarded(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run one operation under the deadline; a crash or hang ends the session with the reason."""
        if self.crashed:
            coro.close()
            raise BrowserCrashed(self.crashed)
        try:
            return await asyncio.wait_for(coro, timeout or self.runtime.op_timeout_s)
        except TimeoutError as exc:
            self._mark(f"the browser did not answer within {timeout or self.runtime.op_timeout_s:.0f} s")
            await self.runtime._kill_browser()
            raise BrowserCrashed(self.crashed or "hung") from exc
        except Exception as exc:
            if self.crashed or "Target page, context or browser has been closed" in str(exc) or \
                    "Target crashed" in str(exc):
                self._mark(self.crashed or f"the browser went away: {exc}")
                raise BrowserCrashed(self.crashed or str(exc)) from exc
            raise

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.context.close(), 5)
