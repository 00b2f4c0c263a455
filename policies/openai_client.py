"""A policy behind any OpenAI-compatible server (vLLM, the embedded server, a hosted API), on httpx.

Two modes:

* **token-exact** (a tokenizer is given): the client renders each prompt itself with the chat template,
  extending the previous turn's exact tokens (:class:`~agentenv.rendering.ChatRenderer`), and sends the
  token ids to ``/v1/completions``; the server returns the sampled token ids (vLLM's ``return_token_ids``),
  so the trajectory holds exactly the tokens the model saw and sampled, and the server's prefix cache hits
  on every turn.
* **chat** (no tokenizer): ``/v1/chat/completions`` with the messages; token ids are recorded when the
  server returns them (vLLM and the embedded server do), else the turn is flagged (``token_source``) and
  a warning says that trajectories are not token-exact.

Requests go through one pooled ``httpx.AsyncClient`` (created per event loop), at most ``concurrency`` at a
time; connection errors, 429 and 5xx answers are retried with exponential backoff and jitter (``Retry-After``
is honoured), and every call has one total deadline (``timeout_s``: waits, attempts and backoff together).

Failures are typed so that the collector can tell whose fault an episode's end was (reliability F04-F06):

* :class:`~agentenv.policy.PolicyUnavailable` (infrastructure: the episode ends ``failed_infra`` and may be
  retried, never scored): connection errors, 429 and 5xx answers once the retries are spent, and the total
  deadline (a server that stalls or trickles its answer);
* :class:`~agentenv.policy.ModelError` (the answer is unusable, ``failed_model``): a body that is not a JSON
  object (``malformed_body``), no ``choices`` (``no_choices``), and in token-exact mode completion token ids
  that do not spell the returned text (``ids_text_mismatch``);
* :class:`~agentenv.policy.PromptError`: 400/413/422, the request's own fault; other 4xx (a wrong key or
  model name) are plain :class:`~agentenv.policy.PolicyError`.

An empty completion is a valid (empty) action, and ``finish_reason="length"`` is recorded on the output; neither
is an error. ``stats`` counts requests, retries and failures, and each failed attempt by kind (``error:KIND``)
and each failed call by the kind that ended it (``failed:KIND``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import random
import ssl
import warnings
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx

from agentenv.policy import ModelError, PolicyError, PolicyOutput, PolicyRequest, PolicyUnavailable, PromptError
from agentenv.rendering import ChatRenderer

from .catalog import load_tokenizer

_RETRY_STATUS = {429, 500, 502, 503, 504}
#: connections per httpx pool (see ``OpenAIPolicy._session``)
POOL_SHARD = 16


def topk_entropy(top_logprobs: Sequence[float]) -> float:
    """A lower bound on a token distribution's entropy from its top-k log-probs.

    ``H = -Σ_top p log p + tail``, where the tail mass ``r = 1 - Σ_top p`` lies on tokens each no likelier
    than the k-th, so the tail contributes at least ``-r log p_k``; that bound is what is added. The result
    is exact when the top k hold all the mass, and otherwise low by at most ``r log((V-k) p_k / r)`` (the
    tail spread evenly over the V-k other tokens). With k = 20 and the peaked distributions of a trained
    policy the tail is small; for a near-uniform distribution (a random model) it is far too low.
    """
    if not top_logprobs:
        return 0.0
    probs = [math.exp(lp) for lp in top_logprobs]
    entropy = -sum(p * lp for p, lp in zip(probs, top_logprobs, strict=True))
    tail = max(0.0, 1.0 - sum(probs))
    return max(0.0, entropy - tail * min(top_logprobs))


def _token_id(name: str) -> int | None:
    return int(name[9:]) if name.startswith("token_id:") and name[9:].isdigit() else None


class OpenAIPolicy:
    """Acts through an OpenAI-compatible endpoint.

    ``base_url`` is the server's root or its ``/v1`` URL. ``model`` defaults to the server's first model.
    ``tokenizer`` (a catalog name, a directory, or a loaded tokenizer) turns on token-exact mode.
    ``policy_version`` is the weight version the server reported with the answer (the embedded server does),
    else the version this client last set or read (:meth:`update_weights`, :meth:`refresh_version`).
    ``stats`` counts requests, retries and failures (by kind: see the module docstring). ``timeout_s`` is the
    total deadline of one call, retries included; ``max_retries`` bounds the attempts (``max_retries + 1``).
    """

    wants_expert = False

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str | None = None,
                 tokenizer: Any = None, concurrency: int = 64, timeout_s: float = 300.0, max_retries: int = 6,
                 backoff_s: float = 0.25, max_backoff_s: float = 10.0, name: str | None = None,
                 extra_body: dict[str, Any] | None = None):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s must be > 0, max_retries and backoff_s >= 0")
        root = base_url.rstrip("/")
        self.base_url = root[:-3] if root.endswith("/v1") else root
        self.model = model
        self.name = name or model or self.base_url
        self.version = 0
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.extra_body = dict(extra_body or {})
        self.api_key = api_key
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.renderer = ChatRenderer(load_tokenizer(tokenizer)) if tokenizer is not None else None
        self.stats: Counter[str] = Counter()
        self._client: httpx.AsyncClient | None = None
        self._shards: list[httpx.AsyncClient] = []
        self._turn = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limit: asyncio.Semaphore | None = None
        self._closer: AsyncGenerator[None, None] | None = None
        self._warned: set[str] = set()

    @property
    def token_exact(self) -> bool:
        return self.renderer is not None

    def __getstate__(self) -> dict[str, Any]:
        """A copy for another process (a Ray env worker): the settings and tokenizer travel; the HTTP
        session, bound to this process's event loop, does not (the copy opens its own)."""
        state = self.__dict__.copy()
        state.update(_client=None, _shards=[], _loop=None, _limit=None, _closer=None)
        return state

    def label_tokens(self, text: str) -> list[int]:
        """``text`` as a complete assistant reply in the served model's tokens (token-exact mode only): its
        tokens and the end-of-turn token, as :meth:`.TransformersPolicy.label_tokens` gives them."""
        renderer = self._require_renderer("label tokens")
        return [*renderer.encode(text), int(renderer.tokenizer.eos_token_id)]

    def tokenize_action(self, request: PolicyRequest, text: str) -> PolicyOutput:
        """Another actor's action (a teacher's) in the served model's tokens, after the prompt it would have
        seen, so a trainer's token stream stays continuous when a teacher acts."""
        renderer = self._require_renderer("a teacher's tokens")
        prompt = renderer.render(request.messages, request.continuation, request.tools)
        return PolicyOutput(text=text, prompt_ids=prompt, completion_ids=self.label_tokens(text),
                            token_source="teacher", policy_version=self.version)

    def _require_renderer(self, what: str) -> ChatRenderer:
        if self.renderer is None:
            raise PolicyError(f"{what} need the served model's tokenizer: pass tokenizer= (token-exact mode)")
        return self.renderer

    # ----- the Policy protocol ------------------------------------------------------------------------------
    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        return list(await asyncio.gather(*(self._act_one(r) for r in requests)))

    async def aclose(self) -> None:
        """Close the HTTP session (the policy stays usable: a later call opens a new one)."""
        closer, same_loop = self._closer, self._loop is asyncio.get_running_loop()
        self._client = self._closer = None
        self._shards = []
        if closer is not None and same_loop:
            await closer.aclose()  # its ``finally`` closes the client

    # ----- weights ------------------------------------------------------------------------------------------
    async def update_weights(self, path: str, version: int) -> None:
        """Make the server serve the checkpoint directory ``path`` as weight version ``version``.

        The sequence is vLLM's (:func:`.vllm_server.update_vllm_weights`: its development endpoints, on
        with ``VLLM_SERVER_DEV_MODE=1`` as the launcher sets them), which the embedded and replay servers
        mirror: pause new requests and let running ones finish, reload the weights in place, drop the prefix
        cache, set the version, resume.
        """
        from .vllm_server import update_vllm_weights

        await asyncio.to_thread(update_vllm_weights, self.base_url, path, version, self.api_key)
        self.version = version

    async def refresh_version(self) -> int:
        """Read the weight version the server reports (``/weight_info``)."""
        info = await self._call("GET", "/weight_info")
        self.version = int(info.get("weight_version") or 0)
        return self.version

    async def models(self) -> list[str]:
        data = await self._call("GET", "/v1/models")
        return [m["id"] for m in data.get("data", [])]

    # ----- one request --------------------------------------------------------------------------------------
    async def _act_one(self, request: PolicyRequest) -> PolicyOutput:
        if self.model is None:
            served = await self.models()
            if not served:
                raise PolicyError(f"{self.base_url} serves no models")
            self.model = served[0]
        version = self.version
        sp = request.sampling
        body: dict[str, Any] = {"model": self.model, "max_tokens": sp.max_tokens, "temperature": sp.temperature,
                                "top_p": sp.top_p, "return_token_ids": True, "return_tokens_as_token_ids": True,
                                "return_entropies": True}
        if sp.seed is not None:
            body["seed"] = sp.seed
        if sp.stop:
            body["stop"] = list(sp.stop)
        if request.trajectory_id:
            body["prompt_cache_key"] = request.trajectory_id
        headers = {"X-Agentenv-Trajectory": request.trajectory_id, "X-Agentenv-Turn": str(request.turn)}
        if request.prefix_hint:  # a fork: agentenv's server shares its parent's cache (vLLM finds it by hash)
            headers["X-Agentenv-Prefix-Hint"] = request.prefix_hint
        k = max(sp.top_logprobs, 1)
        if self.renderer is not None:
            if request.prompt_ids is not None:
                prompt = list(request.prompt_ids)
            else:
                try:
                    prompt = self.renderer.render(request.messages, request.continuation, request.tools)
                except Exception as e:
                    raise PromptError(f"could not render the prompt with the chat template: {e}") from None
            body |= {"prompt": prompt, "logprobs": k}
            data = await self._call("POST", "/v1/completions", body | self.extra_body, headers=headers)
            out = self._parse(self._from_completion, data, prompt, sp.top_logprobs)
        else:
            # vLLM's chat log-probs list the sampled token first, then the top k-1: ask one more to get the top k
            body |= {"messages": request.messages, "logprobs": True, "top_logprobs": min(k + 1, 20)}
            if request.tools:
                body["tools"] = request.tools
            data = await self._call("POST", "/v1/chat/completions", body | self.extra_body, headers=headers)
            out = self._parse(self._from_chat, data, sp.top_logprobs)
        served_version = data.get("weight_version")
        out.policy_version = int(str(served_version)) if str(served_version).isdigit() else version
        return out

    def _parse(self, parse: Any, data: dict[str, Any], *args: Any) -> PolicyOutput:
        """``parse(data, *args)``; an answer of the wrong shape (a string where an object belongs, ids that are
        not integers) is the server's unusable answer, a :class:`ModelError`, never a crash of the caller."""
        try:
            out: PolicyOutput = parse(data, *args)
            return out
        except ModelError as e:
            error = e
        except Exception as e:
            error = ModelError(f"{self.base_url} answered with a malformed body ({type(e).__name__}: {e}): "
                               f"{str(data)[:200]}", kind="malformed_body")
        self.stats[f"error:{error.kind}"] += 1
        self._count_failed(error.kind)
        raise error

    def _from_completion(self, data: dict[str, Any], prompt: list[int], k: int) -> PolicyOutput:
        choice = _first_choice(data, self.base_url)
        text = str(choice.get("text") or "")
        lp = choice.get("logprobs") or {}
        ids = choice.get("token_ids")
        if ids is None:
            ids = _ids_from_names(lp.get("tokens"))
        echoed = choice.get("prompt_token_ids")
        if echoed is not None and list(echoed) != prompt:
            self._warn("prompt", f"{self.base_url} changed the prompt's token ids (it added or dropped tokens); "
                                 "the trajectory records the ids it used")
            prompt = list(echoed)
        if ids is not None:
            self._check_ids(text, ids)
        tops = [_top_from_dict(d) for d in lp.get("top_logprobs") or []]
        return self._output(text, prompt, ids, lp.get("token_logprobs"), tops, choice.get("entropies"),
                            str(choice.get("finish_reason") or "stop"), k)

    def _check_ids(self, text: str, ids: list[Any]) -> None:
        """Token-exact mode: the sampled ids must spell the text, or the trajectory would train on tokens that
        are not the action the env saw. The decoded ids may run past the text (a stop string ends the text but
        its tokens stay among the ids), and detokenizers differ in spacing, so the text, without whitespace,
        must start the decoded ids without whitespace."""
        if self.renderer is None:
            return
        try:
            decoded = str(self.renderer.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True))
        except Exception as e:  # ids out of the vocabulary
            decoded = f"\x00undecodable: {e}"
        if not "".join(decoded.split()).startswith("".join(text.split())):
            raise ModelError(f"{self.base_url} returned token ids that do not spell its text: the ids decode to "
                             f"{decoded[:100]!r}, the text is {text[:100]!r}", kind="ids_text_mismatch")

    def _from_chat(self, data: dict[str, Any], k: int) -> PolicyOutput:
        choice = _first_choice(data, self.base_url)
        message = choice.get("message") or {}
        text = str(message.get("content") or "")
        for call in message.get("tool_calls") or []:  # back to the text an agentenv env parses
            function = call.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except json.JSONDecodeError:
                arguments = function.get("arguments")
            text += "<tool_call>" + json.dumps({"name": function.get("name"), "arguments": arguments}) + "</tool_call>"
        content = (choice.get("logprobs") or {}).get("content") or []
        ids = choice.get("token_ids")
        if ids is None:
            ids = _ids_from_names([c.get("token", "") for c in content]) if content else None
        logprobs = [c.get("logprob") for c in content] if content else None
        tops = [_top_from_list(c.get("top_logprobs") or []) for c in content]
        return self._output(text, data.get("prompt_token_ids"), ids, logprobs, tops, choice.get("entropies"),
                            str(choice.get("finish_reason") or "stop"), k)

    def _output(self, text: str, prompt: list[int] | None, ids: list[int] | None, logprobs: list[Any] | None,
                tops: list[tuple[list[int], list[float]]], entropies: list[Any] | None, finish: str,
                k: int) -> PolicyOutput:
        source = "sampled"
        if ids is None:
            if self.renderer is None:
                self._warn("ids", f"{self.base_url} returned no token ids: trajectories from it are not "
                                  "token-exact (turns are flagged token_source='missing')")
                return PolicyOutput(text=text, token_source="missing", finish_reason=finish)
            self._warn("ids", f"{self.base_url} returned no token ids: the client tokenizes the text again, "
                              "which may differ from what was sampled (turns are flagged token_source='retokenized')")
            ids, logprobs, tops, entropies, source = self.renderer.encode(text), None, [], None, "retokenized"
        ids = [int(i) for i in ids]
        if source == "sampled" and ids and not logprobs:
            self.stats["missing_logprobs"] += 1
            self._warn("logprobs", f"{self.base_url} returned token ids without their log-probs: those turns have "
                                   "no behaviour log-probs (counted in stats['missing_logprobs'])")
        # vLLM adds the sampled token to the top-k when it is not among them: keep the true top k only
        tops = [(i[:max(k, 1)], lp[:max(k, 1)]) for i, lp in tops]
        clean_logprobs = [float(x) for x in logprobs] if logprobs and len(logprobs) == len(ids) else None
        kind = ""
        if entropies and len(entropies) == len(ids) and all(e is not None for e in entropies):
            clean_entropies, kind = [float(e) for e in entropies], "exact"
        elif tops and len(tops) == len(ids) and all(t[1] for t in tops):
            clean_entropies, kind = [topk_entropy(t[1]) for t in tops], "topk"
        else:
            clean_entropies = None
        keep = k and tops and len(tops) == len(ids)
        return PolicyOutput(
            text=text, prompt_ids=list(prompt) if prompt is not None else None, completion_ids=ids,
            logprobs=clean_logprobs, top_ids=[t[0][:k] for t in tops] if keep else None,
            top_logprobs=[t[1][:k] for t in tops] if keep else None, entropies=clean_entropies,
            entropy_kind=kind, token_source=source, finish_reason=finish,
        )

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    # ----- HTTP ---------------------------------------------------------------------------------------------
    async def _session(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """An HTTP client for the next request and the limit on requests in flight. The connections are split
        into pools of at most ``POOL_SHARD``, taken in turn: httpcore scans its whole pool for every request
        it queues or finishes, so one pool of 256 connections spent most of a 256-episode run there
        (reliability L01 measured it)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._limit is None:
            shards = -(-self.concurrency // POOL_SHARD)
            size = -(-self.concurrency // shards)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            clients = [httpx.AsyncClient(base_url=self.base_url, headers=self.headers, limits=limits, verify=_tls(),
                                         timeout=httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s)))
                       for _ in range(shards)]
            self._client, self._shards, self._loop = clients[0], clients, loop
            self._limit = asyncio.Semaphore(self.concurrency)
            # An owner that runs this policy on a loop of its own and never calls aclose (``Collector.run``,
            # any ``asyncio.run``) would leave the pooled connections open once the loop is gone (the
            # resource census found them). The loop closes its open async generators as it shuts down, so
            # this one, parked at its ``yield``, closes the clients on that loop, while it still runs.
            self._closer = _close_at_loop_end(clients)
            await anext(self._closer)
        self._turn = (self._turn + 1) % len(self._shards)
        return self._shards[self._turn], self._limit

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """One API call with bounded retries inside one total deadline; returns the JSON body (``{}`` for an
        empty one).

        Connection errors, 429 and 5xx answers are retried, with exponential backoff and jitter (a
        ``Retry-After`` replaces the backoff): generation is idempotent, so a request repeated after a lost
        answer only samples again. When the attempts run out, or the next wait would pass the deadline, or
        the deadline passes during an attempt, the call raises :class:`PolicyUnavailable`.

        A 2xx answer whose body is not a JSON object is retried within the same budget: a truncated or
        garbled body is usually the transport's doing (a proxy, a worker that died mid-answer) and a retry is
        cheap. If every attempt gets one, the server's answer to this request is unusable: :class:`ModelError`
        (``malformed_body``). Model errors are not retried at the episode level either, so such a server
        cannot keep an episode looping; it costs at most ``max_retries + 1`` attempts within ``timeout_s``.
        """
        client, limit = await self._session()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        self.stats["requests"] += 1
        kind, problem, attempts = "", "", 0
        for attempt in range(self.max_retries + 1):
            attempts = attempt + 1
            delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
            try:
                # httpx's timeouts bound each read; the total deadline also stops a server that trickles
                # bytes (slowloris) from holding the episode forever. Waiting for a free slot counts too.
                response = await asyncio.wait_for(self._send(client, limit, method, path, body, params, headers),
                                                  max(0.0, deadline - loop.time()))
            except (TimeoutError, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
                kind = "timeout"
                break
            except httpx.TransportError as e:  # refused, reset, dropped, or no connection within the connect timeout
                detail = str(e) or repr(e.__cause__ or e.__context__)  # a reset's ReadError says nothing itself
                kind, problem = "connection", f"connection error: {type(e).__name__}: {detail}"
            else:
                code = response.status_code
                if code < 400:
                    try:
                        return _json_object(response)
                    except ValueError:
                        kind, problem = "malformed_body", f"malformed response body: {response.text[:200]!r}"
                elif code in _RETRY_STATUS:
                    kind, problem = f"http_{code}", f"HTTP {code}: {_message(response)}"
                    retry_after = _retry_after(response)
                    if retry_after is not None:
                        delay = min(retry_after, 60.0)
                else:
                    self.stats[f"error:http_{code}"] += 1
                    self._count_failed(f"http_{code}")
                    error = PromptError if code in (400, 413, 422) else PolicyError
                    raise error(f"{self.base_url}{path}: HTTP {code}: {_message(response)}")
            self.stats[f"error:{kind}"] += 1
            if attempt == self.max_retries:
                break
            if loop.time() + delay >= deadline:
                problem += f" (a retry in {delay:.2g} s would pass the {self.timeout_s:g} s deadline)"
                break
            self.stats["retries"] += 1
            await asyncio.sleep(delay)
        if kind == "timeout":
            self.stats["error:timeout"] += 1
            self._count_failed("timeout")
            after = f" ({attempts} attempts; before: {problem})" if problem else ""
            raise PolicyUnavailable(f"{self.base_url}{path}: no answer within {self.timeout_s:g} s{after}")
        self._count_failed(kind)
        message = f"{self.base_url}{path} failed after {attempts} attempts; last: {problem}"
        raise ModelError(message, kind="malformed_body") if kind == "malformed_body" else PolicyUnavailable(message)

    async def _send(self, client: httpx.AsyncClient, limit: asyncio.Semaphore, method: str, path: str,
                    body: dict[str, Any] | None, params: dict[str, str] | None,
                    headers: dict[str, str] | None) -> httpx.Response:
        async with limit:
            return await client.request(method, path, json=body, params=params, headers=headers)

    def _count_failed(self, kind: str) -> None:
        self.stats["failed"] += 1
        self.stats[f"failed:{kind}"] += 1


async def _close_at_loop_end(clients: list[httpx.AsyncClient]) -> AsyncGenerator[None, None]:
    """Suspended at its ``yield`` until closed: by ``aclose``, or by its loop's ``shutdown_asyncgens``."""
    try:
        yield
    finally:
        for client in clients:
            await client.aclose()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context for every client (httpx builds one per client otherwise, ~80 ms each)."""
    return ssl.create_default_context()


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object (``{}`` for an empty body); ValueError when it is not one."""
    if not response.content:
        return {}
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError(f"the body is JSON but not an object: {type(data).__name__}")
    return data


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by model servers: ignored)."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _first_choice(data: dict[str, Any], url: str) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelError(f"{url} answered without choices: {str(data)[:200]}", kind="no_choices")
    return choices[0]


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or body.get("detail") or body)[:300] if isinstance(body, dict) else str(body)[:300]


def _ids_from_names(names: list[str] | None) -> list[int] | None:
    """Token ids from ``token_id:N`` names (``return_tokens_as_token_ids``), None if they are not such names."""
    if not names:
        return None
    ids = [_token_id(n) for n in names]
    return None if any(i is None for i in ids) else [i for i in ids if i is not None]


def _top_from_dict(top: dict[str, float] | None) -> tuple[list[int], list[float]]:
    pairs = sorted(((_token_id(n), float(lp)) for n, lp in (top or {}).items()), key=lambda p: -p[1])
    return [i for i, _ in pairs if i is not None], [lp for i, lp in pairs if i is not None]


def _top_from_list(top: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    pairs = sorted(((_token_id(str(t.get("token", ""))), float(t.get("logprob", 0.0))) for t in top),
                   key=lambda p: -p[1])
    return [i for i, _ in pairs if i is not None], [lp for i, lp in pairs if i is not None]

