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
time; connection errors, 429 and 5xx answers are retried with exponential backoff and jitter (429's
``Retry-After`` is honoured); every request has a total deadline.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx

from agentenv.policy import PolicyError, PolicyOutput, PolicyRequest, PromptError
from agentenv.rendering import ChatRenderer

from .catalog import load_tokenizer

_RETRY_STATUS = {429, 500, 502, 503, 504}


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
    ``stats`` counts requests, retries and failures.
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limit: asyncio.Semaphore | None = None
        self._warned: set[str] = set()

    @property
    def token_exact(self) -> bool:
        return self.renderer is not None

    def __getstate__(self) -> dict[str, Any]:
        """A copy for another process (a Ray env worker): the settings and tokenizer travel; the HTTP
        session, bound to this process's event loop, does not (the copy opens its own)."""
        state = self.__dict__.copy()
        state.update(_client=None, _loop=None, _limit=None)
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
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

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
            out = self._from_completion(data, prompt, sp.top_logprobs)
        else:
            # vLLM's chat log-probs list the sampled token first, then the top k-1: ask one more to get the top k
            body |= {"messages": request.messages, "logprobs": True, "top_logprobs": min(k + 1, 20)}
            if request.tools:
                body["tools"] = request.tools
            data = await self._call("POST", "/v1/chat/completions", body | self.extra_body, headers=headers)
            out = self._from_chat(data, sp.top_logprobs)
        served_version = data.get("weight_version")
        out.policy_version = int(str(served_version)) if str(served_version).isdigit() else version
        return out

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
        tops = [_top_from_dict(d) for d in lp.get("top_logprobs") or []]
        return self._output(text, prompt, ids, lp.get("token_logprobs"), tops, choice.get("entropies"),
                            str(choice.get("finish_reason") or "stop"), k)

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
    def _session(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._limit is None:
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._client = httpx.AsyncClient(base_url=self.base_url, headers=self.headers, limits=limits,
                                             timeout=httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s)))
            self._loop, self._limit = loop, asyncio.Semaphore(self.concurrency)
        return self._client, self._limit

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """One API call with retries; returns the JSON body (``{}`` for an empty one)."""
        client, limit = self._session()
        self.stats["requests"] += 1
        problem = ""
        for attempt in range(self.max_retries + 1):
            delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
            try:
                async with limit:
                    # httpx's timeouts bound each read; the total deadline also stops a server that
                    # trickles bytes (slowloris) from holding the episode forever
                    response = await asyncio.wait_for(
                        client.request(method, path, json=body, params=params, headers=headers), self.timeout_s)
            except (httpx.TimeoutException, TimeoutError):
                self.stats["failed"] += 1
                raise PolicyError(f"{self.base_url}{path}: no answer within {self.timeout_s:g} s") from None
            except httpx.TransportError as e:
                problem = f"connection error: {type(e).__name__}: {e}"
            else:
                if response.status_code < 400:
                    try:
                        return dict(response.json()) if response.content else {}
                    except (json.JSONDecodeError, TypeError, ValueError):
                        problem = f"malformed response body: {response.text[:200]!r}"
                elif response.status_code in _RETRY_STATUS:
                    problem = f"HTTP {response.status_code}: {_message(response)}"
                    retry_after = response.headers.get("retry-after", "")
                    if retry_after.replace(".", "", 1).isdigit():
                        delay = min(float(retry_after), 60.0)
                else:
                    self.stats["failed"] += 1
                    error = PromptError if response.status_code in (400, 413, 422) else PolicyError
                    raise error(f"{self.base_url}{path}: HTTP {response.status_code}: {_message(response)}")
            if attempt < self.max_retries:
                self.stats["retries"] += 1
                await asyncio.sleep(delay)
        self.stats["failed"] += 1
        raise PolicyError(f"{self.base_url}{path} failed after {self.max_retries + 1} attempts; last: {problem}")


def _first_choice(data: dict[str, Any], url: str) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise PolicyError(f"{url} answered without choices: {str(data)[:200]}")
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

