"""Several policy servers behind one client: least-outstanding balancing, sticky episodes, health checks.

:class:`BalancedPolicy` has :class:`~.openai_client.OpenAIPolicy`'s public surface over a list of endpoints
(replicas of one model), with one ``OpenAIPolicy`` per endpoint sharing one tokenizer and renderer.

Routing. A new episode (a ``trajectory_id`` not seen yet) goes to the healthy endpoint with the fewest
requests in flight (ties: round robin). Its later turns stay there while it is healthy, because the server
holds the episode's prefix in its cache; a fork (``prefix_hint`` naming a known episode) starts on its
parent's endpoint for the same reason. Which episode lives where is a bounded LRU map (``max_episodes``);
an episode that falls out of it is placed again as a new one, which costs one cache miss, nothing else.

Failures. A request that fails on an endpoint with a :class:`~agentenv.policy.PolicyError` (connection
refused or reset, a timeout, 5xx answers until the retries ran out) takes that endpoint out and is retried
once on another healthy one; a :class:`~agentenv.policy.PromptError` is the request's own fault and a
:class:`~agentenv.policy.ModelError` the answer's (not JSON, no choices), so neither is retried elsewhere nor
blames the endpoint. When no endpoint is left, the error is :class:`~agentenv.policy.PolicyUnavailable`
(the episode ends ``failed_infra``), as is a request that failed on two endpoints with it. The per-endpoint
clients retry only once by default (``max_retries=1``): one retry absorbs a dropped keep-alive connection,
and more of them would only delay moving the request to a server that works. A background task (started
on the running event loop when an endpoint goes out) checks the endpoints that are out every
``health_interval_s`` seconds (``GET /health``, which all three of agentenv's backends and vLLM answer;
``/v1/models`` for servers without it) and puts one back when it answers. When no endpoint is healthy,
one round of checks runs at once before a request gives up with an error that lists every endpoint and
its last error.

Weights. :meth:`BalancedPolicy.update_weights` first checks the replicas that are out (those that answer
rejoin with the new weights), then pushes to every healthy replica at once; a replica whose push fails is
taken out. The last ``(path, version)`` pushed is remembered, and an endpoint that missed it (it was out,
or its push failed) gets it before it is put back, so a rejoining replica never serves stale weights. Once
weights were pushed, the health task also asks the healthy endpoints for their version (``/weight_info``)
every ``health_interval_s``: a replica restarted between two requests answers with its original weights
and no request fails to tell, so one that reports another version is taken out and given the weights as
well. Each turn records the version that the answering replica reported (``PolicyOutput.policy_version``),
as with one server. A pickled copy (what a Ray env worker gets) balances on its own and pushes no weights.

The client is safe to use from two event loops in two threads at once (the asynchronous training loop
collects in one while it pushes weights from the other): the routing state sits behind a lock that is never
held across an ``await``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import warnings
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from agentenv.policy import ModelError, PolicyError, PolicyOutput, PolicyRequest, PolicyUnavailable, PromptError
from agentenv.rendering import ChatRenderer

from .catalog import load_tokenizer
from .openai_client import OpenAIPolicy

log = logging.getLogger(__name__)

#: seconds a health check may take (the weight push on rejoin has its own, longer deadline)
HEALTH_TIMEOUT_S = 5.0
#: keyword arguments that only a balanced client takes (``policy_client`` drops them for a single URL)
BALANCER_OPTIONS = ("health_interval_s", "max_episodes")


@dataclass(frozen=True)
class EndpointState:
    """One endpoint as :meth:`BalancedPolicy.endpoint_stats` sees it."""

    url: str
    healthy: bool
    #: requests sent to it and not answered yet
    outstanding: int
    #: requests routed to it since the client was made (a failed-over request counts on both)
    requests: int
    #: requests and weight pushes that failed on it and took it out
    failures: int
    last_error: str
    #: the weight version it last reported or was given
    version: int
    #: episodes currently pinned to it
    episodes: int


class _Endpoint:
    def __init__(self, index: int, client: OpenAIPolicy):
        self.index, self.client = index, client
        self.healthy = True
        self.checking = False  # a health check (and maybe a weight push) is running on it
        self.outstanding = self.routed = self.failures = 0
        self.last_error = ""
        self.pushed: tuple[str, int] | None = None  # the last weights this client gave it

    @property
    def url(self) -> str:
        return self.client.base_url

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "outstanding": 0, "checking": False}  # a copy starts with nothing in flight


def split_endpoints(urls: str | Sequence[str]) -> list[str]:
    """The endpoint URLs in ``urls`` (a list, or one string with commas between URLs), checked."""
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    found = [u.strip() for u in items if u.strip()]
    if not found:
        raise ValueError(f"no policy server URL in {urls!r}")
    bad = [u for u in found if not u.startswith(("http://", "https://"))]
    if bad:
        raise ValueError(f"policy server URLs must start with http:// or https://, got {', '.join(bad)}")
    roots = [u.rstrip("/").removesuffix("/v1") for u in found]
    repeated = sorted({r for r in roots if roots.count(r) > 1})
    if repeated:
        raise ValueError(f"the same policy server is listed twice: {', '.join(repeated)}")
    return found


class BalancedPolicy:
    """Acts through several OpenAI-compatible servers of one model; see the module docstring.

    ``base_urls``: the endpoints (each a server root or its ``/v1`` URL). ``model``, ``api_key``,
    ``tokenizer`` (token-exact mode; loaded once for all endpoints), ``timeout_s``, ``max_retries``,
    ``backoff_s``, ``max_backoff_s`` and ``extra_body`` mean what they mean for
    :class:`~.openai_client.OpenAIPolicy`, per endpoint; ``concurrency`` is per endpoint too (each one may
    have to carry the whole load when the others are out). ``health_interval_s``: seconds between checks of
    an endpoint that is out. ``max_episodes``: how many episodes' endpoints are remembered.
    """

    wants_expert = False

    def __init__(self, base_urls: str | Sequence[str], model: str | None = None, *, api_key: str | None = None,
                 tokenizer: Any = None, concurrency: int = 64, timeout_s: float = 300.0, max_retries: int = 1,
                 backoff_s: float = 0.25, max_backoff_s: float = 10.0, name: str | None = None,
                 extra_body: dict[str, Any] | None = None, health_interval_s: float = 2.0,
                 max_episodes: int = 100_000):
        urls = split_endpoints(base_urls)
        if health_interval_s <= 0:
            raise ValueError(f"health_interval_s must be > 0, got {health_interval_s}")
        if max_episodes < 1:
            raise ValueError(f"max_episodes must be >= 1, got {max_episodes}")
        self.renderer = ChatRenderer(load_tokenizer(tokenizer)) if tokenizer is not None else None
        self._endpoints: list[_Endpoint] = []
        for i, url in enumerate(urls):
            client = OpenAIPolicy(url, model, api_key=api_key, concurrency=concurrency, timeout_s=timeout_s,
                                  max_retries=max_retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s,
                                  extra_body=extra_body)
            client.renderer = self.renderer
            self._endpoints.append(_Endpoint(i, client))
        self.base_urls = [ep.url for ep in self._endpoints]
        self.model = model
        self.name = name or model or ",".join(self.base_urls)
        self.version = 0
        self.health_interval_s, self.max_episodes = health_interval_s, max_episodes
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._lock = threading.Lock()
        self._episodes: OrderedDict[str, _Endpoint] = OrderedDict()
        self._next = 0  # round robin among endpoints tied on outstanding requests
        self._latest: tuple[str, int] | None = None  # the last weights given to update_weights
        self._counters: Counter[str] = Counter()
        self._watcher: asyncio.Task[None] | None = None

    # ----- what OpenAIPolicy offers -------------------------------------------------------------------------
    @property
    def token_exact(self) -> bool:
        return self.renderer is not None

    def __getstate__(self) -> dict[str, Any]:
        """A copy for another process (a Ray env worker): the endpoints, settings, tokenizer and which
        episode lives where travel; the lock, the health task and the HTTP sessions do not. The copy knows
        no weights to push: it takes replicas out and puts them back like this one, and weights stay the
        business of the process that calls :meth:`update_weights` (whose next update also reaches every
        replica that is back)."""
        return {**self.__dict__, "_lock": None, "_watcher": None, "_latest": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def label_tokens(self, text: str) -> list[int]:
        """``text`` as a complete assistant reply in the served model's tokens (token-exact mode only)."""
        return self._endpoints[0].client.label_tokens(text)

    def tokenize_action(self, request: PolicyRequest, text: str) -> PolicyOutput:
        """Another actor's action in the served model's tokens (see :meth:`.OpenAIPolicy.tokenize_action`)."""
        out = self._endpoints[0].client.tokenize_action(request, text)
        out.policy_version = self.version
        return out

    @property
    def stats(self) -> Counter[str]:
        """The endpoints' request counters summed (``requests``, ``retries``, ``failed``), plus the
        balancer's own: ``failovers`` (requests moved to another endpoint), ``marked_down``, ``rejoined``."""
        total: Counter[str] = Counter()
        for ep in self._endpoints:
            total.update(ep.client.stats)
        with self._lock:
            total.update(self._counters)
        return total

    def endpoint_stats(self) -> list[EndpointState]:
        """Each endpoint's health, load and counters, in the order given."""
        with self._lock:
            pinned = Counter(ep.index for ep in self._episodes.values())
            return [EndpointState(ep.url, ep.healthy, ep.outstanding, ep.routed, ep.failures, ep.last_error,
                                  ep.client.version, pinned[ep.index]) for ep in self._endpoints]

    # ----- the Policy protocol ------------------------------------------------------------------------------
    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        self._watch()
        return list(await asyncio.gather(*(self._act_one(r) for r in requests)))

    async def aclose(self) -> None:
        task = self._watcher
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._watcher = None
        await asyncio.gather(*(ep.client.aclose() for ep in self._endpoints))

    async def _act_one(self, request: PolicyRequest) -> PolicyOutput:
        tried: list[_Endpoint] = []
        first_error: PolicyError | None = None
        while True:
            ep = self._route(request, tried)
            if ep is None:
                await self._check_all(wait=True)  # endpoints marked out may answer again by now
                ep = self._route(request, tried)
            if ep is None:
                raise self._unavailable(first_error)
            try:
                [out] = await ep.client.act([request])
                return out
            except (PromptError, ModelError):  # the request's or the model's answer's fault, not the endpoint's
                raise
            except PolicyError as e:
                self._mark_down(ep, str(e))
                if first_error is not None:
                    error = PolicyUnavailable if isinstance(e, PolicyUnavailable) else PolicyError
                    raise error(f"{e} (after failing over from {tried[0].url}: {first_error})") from None
                first_error = e
                tried.append(ep)
                with self._lock:
                    self._counters["failovers"] += 1
            finally:
                with self._lock:
                    ep.outstanding -= 1

    def _route(self, request: PolicyRequest, exclude: Sequence[_Endpoint]) -> _Endpoint | None:
        """The endpoint for ``request`` (counted as outstanding on it), or None when none is healthy."""
        with self._lock:
            healthy = [ep for ep in self._endpoints if ep.healthy and ep not in exclude]
            if not healthy:
                return None
            key = request.trajectory_id
            chosen = self._episodes.get(key) if key else None
            if chosen is None and key and request.prefix_hint:
                chosen = self._episodes.get(request.prefix_hint)
            if chosen is None or chosen not in healthy:
                n = len(self._endpoints)
                rotated = sorted(healthy, key=lambda ep: (ep.index - self._next) % n)
                chosen = min(rotated, key=lambda ep: ep.outstanding)  # the first of the least loaded
                self._next = (chosen.index + 1) % n
            if key:
                self._episodes[key] = chosen
                self._episodes.move_to_end(key)
                while len(self._episodes) > self.max_episodes:
                    self._episodes.popitem(last=False)
            chosen.outstanding += 1
            chosen.routed += 1
            return chosen

    def _unavailable(self, cause: PolicyError | None) -> PolicyUnavailable:
        with self._lock:
            self._counters["no_endpoint"] += 1
            states = "; ".join(f"{ep.url}: {'healthy' if ep.healthy else 'out'}"
                               + (f" ({ep.last_error})" if ep.last_error else "") for ep in self._endpoints)
        head = f"the request failed ({cause}) and no other" if cause is not None else "no"
        return PolicyUnavailable(f"{head} policy endpoint is healthy: {states}")

    # ----- health -------------------------------------------------------------------------------------------
    def _mark_down(self, ep: _Endpoint, error: str) -> None:
        with self._lock:
            ep.failures += 1
            ep.last_error = error
            if not ep.healthy:
                return
            ep.healthy = False
            self._counters["marked_down"] += 1
        log.warning("policy endpoint %s is out until it answers again: %s", ep.url, error)
        self._watch()

    def _needs_watching(self) -> bool:
        return self._latest is not None or not all(ep.healthy for ep in self._endpoints)

    def _watch(self) -> None:
        """Make sure that a task on this event loop checks the endpoints (see :meth:`_watch_loop`)."""
        if not self._needs_watching():
            return
        loop = asyncio.get_running_loop()
        task = self._watcher
        if task is None or task.done() or task.get_loop() is not loop:
            self._watcher = loop.create_task(self._watch_loop(), name="agentenv-policy-health")

    async def _watch_loop(self) -> None:
        """Every ``health_interval_s``: check the endpoints that are out, and (once weights were pushed) ask
        the healthy ones which version they serve. One that restarted between two requests answers again
        with its original weights, which no failed request would reveal: it is taken out and gets the
        weights before it rejoins."""
        while self._needs_watching():
            await asyncio.sleep(self.health_interval_s)
            await self._check_all(wait=False)
            if self._latest is not None:
                async with httpx.AsyncClient(headers=self._headers, timeout=HEALTH_TIMEOUT_S) as http:
                    await asyncio.gather(*(self._verify(ep, http) for ep in self._endpoints if ep.healthy))

    async def _check_all(self, wait: bool) -> None:
        """One health check of every endpoint that is out; with ``wait``, also wait (briefly) for checks
        that another task is running."""
        with self._lock:
            mine = [ep for ep in self._endpoints if not ep.healthy and not ep.checking]
            for ep in mine:
                ep.checking = True
        if mine:
            async with httpx.AsyncClient(headers=self._headers, timeout=HEALTH_TIMEOUT_S) as http:
                await asyncio.gather(*(self._check(ep, http) for ep in mine))
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while wait and any(ep.checking for ep in self._endpoints) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def _check(self, ep: _Endpoint, http: httpx.AsyncClient) -> None:
        """Put ``ep`` back if it answers, after giving it the latest weights if it missed them."""
        try:
            response = await http.get(f"{ep.url}/health")
            if response.status_code == 404:
                response = await http.get(f"{ep.url}/v1/models")
            if response.status_code != 200:
                ep.last_error = f"health check: HTTP {response.status_code}"
                return
            while True:
                with self._lock:
                    want = self._latest
                if want is not None and (ep.pushed != want or await self._served_version(ep, http) != want[1]):
                    await ep.client.update_weights(*want)
                    ep.pushed = want
                with self._lock:
                    if self._latest == want:  # else an update came meanwhile: push that one too
                        ep.healthy, ep.last_error = True, ""
                        self._counters["rejoined"] += 1
                        break
            log.info("policy endpoint %s is back%s", ep.url, f" (weights v{want[1]})" if want else "")
        except Exception as e:
            ep.last_error = f"health check: {type(e).__name__}: {e}"
        finally:
            with self._lock:
                ep.checking = False

    async def _verify(self, ep: _Endpoint, http: httpx.AsyncClient) -> None:
        """Take ``ep`` out if it serves another weight version than the one it was given last."""
        with self._lock:
            want = self._latest
        if want is None or ep.pushed != want:
            return  # an update to it is under way, or it never had one from this client
        try:
            served = await self._served_version(ep, http)
        except httpx.HTTPError:
            return  # a request will find out whether it is gone
        with self._lock:
            stale = served is not None and served != want[1] and self._latest == want and ep.pushed == want
            if stale:
                ep.pushed = None
        if stale:
            self._mark_down(ep, f"it serves weight version {served}, not v{want[1]} (restarted?)")

    async def _served_version(self, ep: _Endpoint, http: httpx.AsyncClient) -> int | None:
        """The version ``ep`` reports on ``/weight_info``; None when it does not say."""
        response = await http.get(f"{ep.url}/weight_info")
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            return None
        version = str(body.get("weight_version")) if isinstance(body, dict) else ""
        return int(version) if version.isdigit() else None

    # ----- weights ------------------------------------------------------------------------------------------
    async def update_weights(self, path: str, version: int) -> None:
        """Make every replica that answers serve the checkpoint directory ``path`` as ``version``, all at
        once (replicas that are out are checked first, and those that answer rejoin with these weights).

        A replica whose push fails is taken out, and gets these weights before it is put back. If no replica
        takes them, this raises :class:`~agentenv.policy.PolicyError` and the previous weights stay the ones
        that rejoining replicas get.
        """
        want = (str(path), version)
        with self._lock:
            previous, self._latest = self._latest, want
        await self._check_all(wait=True)  # replicas that are out but answer get these weights as they rejoin
        targets = [ep for ep in self._endpoints if ep.healthy and ep.pushed != want]
        errors = await asyncio.gather(*(self._push(ep, want) for ep in targets))
        if not any(ep.healthy and ep.pushed == want for ep in self._endpoints):
            with self._lock:
                if self._latest == want:
                    self._latest = previous
            problems = "; ".join(f"{ep.url}: {e}" for ep, e in zip(targets, errors, strict=True) if e)
            raise PolicyError(f"weight update to v{version} reached no policy endpoint"
                              + (f": {problems}" if problems else " (none is healthy)"))
        self.version = version

    async def _push(self, ep: _Endpoint, want: tuple[str, int]) -> str:
        try:
            await ep.client.update_weights(*want)
        except Exception as e:
            ep.pushed = None  # it may be half-way (paused, say): push again before it rejoins
            self._mark_down(ep, f"weight update failed: {e}")
            return str(e) or type(e).__name__
        ep.pushed = want
        return ""

    async def refresh_version(self) -> int:
        """Read the weight version every healthy replica reports; the lowest one (a warning says when they
        differ, which should last no longer than an update)."""
        targets = [ep for ep in self._endpoints if ep.healthy]
        results = await asyncio.gather(*(ep.client.refresh_version() for ep in targets), return_exceptions=True)
        versions = {}
        for ep, result in zip(targets, results, strict=True):
            if isinstance(result, PolicyError) and not isinstance(result, PromptError):
                self._mark_down(ep, str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                versions[ep.url] = result
        if not versions:
            raise self._unavailable(None)
        if len(set(versions.values())) > 1:
            warnings.warn(f"the policy replicas serve different weight versions: {versions}", RuntimeWarning,
                          stacklevel=2)
        self.version = min(versions.values())
        return self.version

    async def models(self) -> list[str]:
        """The models the first healthy endpoint serves."""
        for ep in self._endpoints:
            if ep.healthy:
                try:
                    return await ep.client.models()
                except PromptError:
                    raise
                except PolicyError as e:
                    self._mark_down(ep, str(e))
        raise self._unavailable(None)


def policy_client(urls: str | Sequence[str], **kwargs: Any) -> OpenAIPolicy | BalancedPolicy:
    """The client for one policy server or several: an :class:`~.openai_client.OpenAIPolicy` for one URL,
    a :class:`BalancedPolicy` for more (``urls``: a list, or URLs joined by commas). ``kwargs`` go to the
    client's constructor; the balancer's own (``health_interval_s``, ``max_episodes``) are dropped for one
    URL, where there is nothing to balance."""
    endpoints = split_endpoints(urls)
    if len(endpoints) == 1:
        return OpenAIPolicy(endpoints[0], **{k: v for k, v in kwargs.items() if k not in BALANCER_OPTIONS})
    return BalancedPolicy(endpoints, **kwargs)
