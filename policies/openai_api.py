"""The OpenAI-compatible HTTP layer shared by the embedded server and the replay server.

It speaks the subset of the OpenAI API that agents use (``/v1/models``, ``/v1/chat/completions``,
``/v1/completions``: streaming, ``n``, stop sequences, log-probs with top-k, tool calls) plus vLLM's
extensions that token-exact training needs, with vLLM's field names so that one client works against
both: ``return_token_ids`` (``prompt_token_ids`` and per-choice ``token_ids``), ``return_tokens_as_token_ids``
(log-prob tokens written ``token_id:N``) and prompts given as token ids. vLLM's weight-update endpoints
are mirrored too (``/pause``, ``/resume``, ``/collective_rpc`` with ``reload_weights``,
``/update_weight_version``, ``/weight_info``, ``/reset_prefix_cache``), so a trainer pushes weights to
either server the same way. One extension of ours: ``return_entropies`` adds each choice's per-token
entropies, which vLLM cannot give.

Anything a request asks for that the server would silently ignore is refused with a 400 naming it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from agentenv.messages import Message
from agentenv.parsing import ActionParseError, ToolCallParser
from agentenv.policy import PolicyError, PolicyOutput, PolicyRequest, PromptError, SampledToken, SamplingParams


class ServedModel(Protocol):
    """What the HTTP layer needs from a model: generation, streaming, detokenisation and weight updates."""

    name: str
    version: int
    max_context: int

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]: ...

    def stream(self, request: PolicyRequest) -> AsyncIterator[SampledToken | PolicyOutput]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_text(self, token_id: int) -> str: ...

    def load_weights(self, path: str, version: int) -> None: ...

    def clear_prefix_cache(self) -> None: ...


class APIError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param


# ------------------------------------------------------------------------------------------------ requests
#: parameters accepted and deliberately without effect here (bookkeeping fields of the OpenAI API)
_IGNORED = {"user", "metadata", "store", "service_tier", "parallel_tool_calls", "safety_identifier"}


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=64)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    # vLLM's extensions
    return_token_ids: bool = False
    return_tokens_as_token_ids: bool = False
    # ours: per-token entropies of the sampling distribution
    return_entropies: bool = False
    #: keys the prefix cache (OpenAI's field); the embedded model keeps one episode's KV prefix per key
    prompt_cache_key: str | None = None

    def refuse_unsupported(self) -> None:
        unknown = sorted(set(self.model_extra or {}) - _IGNORED)
        if unknown:
            raise APIError(400, f"unsupported parameters: {', '.join(unknown)}", param=unknown[0])
        if self.frequency_penalty or self.presence_penalty or self.logit_bias:
            raise APIError(400, "frequency_penalty, presence_penalty and logit_bias are not supported")

    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if any(not s for s in stops):
            raise APIError(400, "stop sequences must be non-empty strings", param="stop")
        return tuple(stops)


class ChatCompletionRequest(_Common):
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(_Common):
    prompt: str | list[int] | list[str] | list[list[int]]
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None


# ------------------------------------------------------------------------------------------------ messages
def normalise_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages as plain ``{"role", "content"}`` text messages for a chat template.

    Content parts are joined; an assistant's ``tool_calls`` are written as the ``<tool_call>{...}</tool_call>``
    text that agentenv's tool-call parser reads (and that a model trained here writes).
    """
    out = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise APIError(400, f"messages[{i}].role must be system, user, assistant or tool; got {role!r}",
                           param=f"messages[{i}].role")
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise APIError(400, f"messages[{i}].content: only text parts are supported by this model",
                                   param=f"messages[{i}].content")
                parts.append(part["text"])
            content = "".join(parts)
        elif content is None:
            content = ""
        elif not isinstance(content, str):
            raise APIError(400, f"messages[{i}].content must be a string or a list of text parts",
                           param=f"messages[{i}].content")
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise APIError(400, f"messages[{i}].tool_calls: each call needs function.name",
                               param=f"messages[{i}].tool_calls")
            arguments = function.get("arguments") or "{}"
            try:
                parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
            except json.JSONDecodeError:
                raise APIError(400, f"messages[{i}].tool_calls: arguments are not JSON",
                               param=f"messages[{i}].tool_calls") from None
            call_text = json.dumps({"name": function["name"], "arguments": parsed})
            content += f"<tool_call>{call_text}</tool_call>"
        out.append({"role": "system" if role == "developer" else role, "content": content})
    return out


def tool_calls_in(text: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The OpenAI ``tool_calls`` a completion makes, or None when it makes none that fit the tools' schemas."""
    try:
        parsed = ToolCallParser(tools).parse(text)
    except (ActionParseError, ValueError):
        return None
    return [{"id": f"call_{secrets.token_hex(12)}", "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments)}} for c in parsed.tool_calls]


# ------------------------------------------------------------------------------------------------ log-probs
class _TokenNames:
    def __init__(self, model: ServedModel, as_ids: bool):
        self.model, self.as_ids = model, as_ids

    def __call__(self, token_id: int) -> str:
        return f"token_id:{token_id}" if self.as_ids else self.model.token_text(token_id)


def chat_logprobs(tokens: list[SampledToken], k: int, name: _TokenNames) -> dict[str, Any]:
    def entry(token_id: int, logprob: float) -> dict[str, Any]:
        text = name(token_id)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    return {"content": [
        {**entry(t.id, t.logprob), "top_logprobs": [entry(i, lp) for i, lp in zip(t.top_ids[:k], t.top_logprobs[:k],
                                                                                 strict=True)]}
        for t in tokens
    ]}


def completion_logprobs(tokens: list[SampledToken], k: int, name: _TokenNames, offset: int = 0) -> dict[str, Any]:
    names = [name(t.id) for t in tokens]
    offsets, at = [], offset
    for text in names:
        offsets.append(at)
        at += len(text)
    return {
        "tokens": names,
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{name(i): lp for i, lp in zip(t.top_ids[:k], t.top_logprobs[:k], strict=True)}
                         for t in tokens],
        "text_offset": offsets,
    }


def sampled_tokens(out: PolicyOutput) -> list[SampledToken]:
    ids = out.completion_ids or []
    logprobs = out.logprobs or [0.0] * len(ids)
    top_ids = out.top_ids or [[] for _ in ids]
    top_lps = out.top_logprobs or [[] for _ in ids]
    entropies: list[float | None] = [*out.entropies] if out.entropies else [None] * len(ids)
    return [SampledToken(*x) for x in zip(ids, logprobs, top_ids, top_lps, entropies, strict=True)]


# ------------------------------------------------------------------------------------------------ the app
def create_openai_app(model: ServedModel, api_key: str | None = None, title: str = "agentenv policy server",
                      describe: Callable[[], dict[str, Any]] | None = None) -> FastAPI:
    """The OpenAI-compatible app over ``model``; ``api_key`` (when set) is required as a Bearer token."""
    app = FastAPI(title=title)
    resumed = asyncio.Event()
    resumed.set()
    created = int(time.time())

    @app.exception_handler(APIError)
    async def _api_error(_: Request, e: APIError) -> JSONResponse:
        return _error(e.status, e.message, e.kind, e.param)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(x) for x in err.get('loc', ())[1:]) or 'body'}: {err.get('msg')}"
                             for err in e.errors()[:5])
        return _error(400, f"invalid request: {problems}")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(e).__name__}: {e}", "internal_error")

    @app.middleware("http")
    async def _authorise(request: Request, call_next: Any) -> Any:
        if api_key and request.url.path != "/health":
            header = request.headers.get("authorization", "")
            if not secrets.compare_digest(header.encode(), f"Bearer {api_key}".encode()):
                return _error(401, "missing or wrong API key (send 'Authorization: Bearer KEY')",
                              "authentication_error")
        return await call_next(request)

    def check_model(name: str | None) -> None:
        if name is not None and name != model.name:
            raise APIError(404, f"the model {name!r} does not exist; this server serves {model.name!r}",
                           "not_found_error", "model")

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model.name, "object": "model", "created": created,
                                            "owned_by": "agentenv", "max_model_len": model.max_context,
                                            **(describe() if describe else {})}]}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest, raw: Request) -> Any:
        body.refuse_unsupported()
        check_model(body.model)
        if body.response_format and body.response_format.get("type") != "text":
            raise APIError(400, "response_format other than text is not supported", param="response_format")
        messages = normalise_messages(body.messages)
        tools = body.tools if body.tools and body.tool_choice != "none" else None
        k = (body.top_logprobs or 0) if body.logprobs else 0
        max_tokens = body.max_completion_tokens or body.max_tokens or model.max_context
        request = PolicyRequest(cast(list[Message], messages), _sampling(body, max_tokens, k), tools=body.tools or None,
                                **_episode(body, raw))
        requests = _copies(request, body.n)
        await resumed.wait()
        if body.stream:
            return _sse(_chat_chunks(model, body, requests, k, tools))
        outputs = await _generate(model, requests)
        name = _TokenNames(model, body.return_tokens_as_token_ids)
        choices = []
        for i, out in enumerate(outputs):
            calls = tool_calls_in(out.text, tools) if tools else None
            message: dict[str, Any] = {"role": "assistant", "content": None if calls else out.text}
            if calls:
                message["tool_calls"] = calls
            choice: dict[str, Any] = {
                "index": i, "message": message,
                "logprobs": chat_logprobs(sampled_tokens(out), k, name) if body.logprobs else None,
                "finish_reason": "tool_calls" if calls else out.finish_reason,
            }
            _extras(choice, body, out)
            choices.append(choice)
        response: dict[str, Any] = {"id": f"chatcmpl-{secrets.token_hex(12)}", "object": "chat.completion",
                                    "created": int(time.time()), "model": model.name, "choices": choices,
                                    "usage": _usage(outputs), "weight_version": str(outputs[0].policy_version)}
        if body.return_token_ids:
            response["prompt_token_ids"] = outputs[0].prompt_ids
        return response

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, raw: Request) -> Any:
        body.refuse_unsupported()
        check_model(body.model)
        if body.echo or body.suffix or (body.best_of or body.n) != body.n:
            raise APIError(400, "echo, suffix and best_of are not supported")
        k = body.logprobs or 0
        prompts = _prompts(body.prompt)
        requests = []
        for prompt in prompts:
            ids = prompt if isinstance(prompt, list) else model_encode(model, prompt)
            base = PolicyRequest([], _sampling(body, body.max_tokens or 16, k), prompt_ids=ids, **_episode(body, raw))
            requests.extend(_copies(base, body.n))
        await resumed.wait()
        if body.stream:
            return _sse(_completion_chunks(model, body, requests, k))
        outputs = await _generate(model, requests)
        name = _TokenNames(model, body.return_tokens_as_token_ids)
        choices = []
        for i, out in enumerate(outputs):
            choice: dict[str, Any] = {
                "index": i, "text": out.text, "finish_reason": out.finish_reason,
                "logprobs": completion_logprobs(sampled_tokens(out), k, name) if body.logprobs is not None else None,
            }
            _extras(choice, body, out)
            if body.return_token_ids:
                choice["prompt_token_ids"] = out.prompt_ids
            choices.append(choice)
        return {"id": f"cmpl-{secrets.token_hex(12)}", "object": "text_completion", "created": int(time.time()),
                "model": model.name, "choices": choices, "usage": _usage(outputs),
                "weight_version": str(outputs[0].policy_version)}

    # ----- weight updates, with vLLM's endpoint names ---------------------------------------------------
    @app.post("/pause")
    async def pause(mode: str = "wait") -> dict[str, Any]:
        """New requests wait until ``/resume``; a running batch finishes (vLLM's ``mode=wait``; a weight
        update also waits for it)."""
        if mode != "wait":
            raise APIError(400, f"pause mode {mode!r} is not supported here; use mode=wait", param="mode")
        resumed.clear()
        return {"status": "paused"}

    @app.post("/resume")
    async def resume() -> dict[str, Any]:
        resumed.set()
        return {"status": "resumed"}

    @app.get("/is_paused")
    async def is_paused() -> dict[str, Any]:
        return {"is_paused": not resumed.is_set()}

    @app.post("/collective_rpc")
    async def collective_rpc(request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        if body.get("method") not in ("reload_weights", "agentenv_reload_weights"):
            raise APIError(400, "this server supports only the reload_weights method", param="method")
        path = (body.get("kwargs") or {}).get("weights_path")
        if not isinstance(path, str) or not path:
            raise APIError(400, "reload_weights needs kwargs.weights_path (a checkpoint directory)")
        try:
            await asyncio.to_thread(model.load_weights, path, model.version)
        except (OSError, ValueError, RuntimeError) as e:
            raise APIError(400, f"could not load weights from {path}: {e}") from None
        return {"results": [None]}

    @app.post("/update_weight_version")
    async def update_weight_version(request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        try:
            model.version = int(body.get("new_version"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise APIError(400, "new_version must be an integer (as a string or a number)") from None
        return {"success": True, "new_version": str(model.version)}

    @app.get("/weight_info")
    async def weight_info() -> dict[str, Any]:
        return {"weight_version": str(model.version)}

    @app.post("/reset_prefix_cache")
    async def reset_prefix_cache() -> dict[str, Any]:
        model.clear_prefix_cache()
        return {"success": True}

    return app


def model_encode(model: ServedModel, text: str) -> list[int]:
    encode = getattr(model, "encode", None)
    if encode is None:
        raise APIError(400, "this server takes completion prompts as token ids only")
    return list(encode(text))


def _error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}},
                        status_code=status)


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise APIError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise APIError(400, "the body must be a JSON object")
    return body


def _episode(body: _Common, raw: Request) -> dict[str, Any]:
    """Which episode and turn a request belongs to: ``prompt_cache_key`` (or agentenv's client header) keys
    the prefix cache; the turn header lets the replay server answer with the recorded turn."""
    turn = raw.headers.get("x-agentenv-turn", "")
    return {"trajectory_id": body.prompt_cache_key or raw.headers.get("x-agentenv-trajectory", ""),
            "turn": int(turn) if turn.isdigit() else 0, "prefix_hint": raw.headers.get("x-agentenv-prefix-hint", "")}


def _sampling(body: _Common, max_tokens: int, k: int) -> SamplingParams:
    try:
        return SamplingParams(max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p,
                              top_logprobs=k, seed=body.seed, stop=body.stops())
    except ValueError as e:
        raise APIError(400, str(e)) from None


def _copies(request: PolicyRequest, n: int) -> list[PolicyRequest]:
    """``n`` independent samples of ``request`` (seeded ones get seeds ``seed, seed+1, ...``)."""
    out = []
    for i in range(n):
        seed = request.sampling.seed
        sampling = request.sampling if seed is None or i == 0 else replace(request.sampling, seed=seed + i)
        key = request.trajectory_id if i == 0 or not request.trajectory_id else f"{request.trajectory_id}#{i}"
        out.append(replace(request, sampling=sampling, trajectory_id=key))
    return out


def _prompts(prompt: str | list[int] | list[str] | list[list[int]]) -> list[str | list[int]]:
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise APIError(400, "prompt must not be empty", param="prompt")
    if all(isinstance(t, int) for t in prompt):
        return [list(prompt)]  # type: ignore[arg-type]
    return list(prompt)  # type: ignore[arg-type]


async def _generate(model: ServedModel, requests: list[PolicyRequest]) -> list[PolicyOutput]:
    try:
        return await model.act(requests)
    except PromptError as e:
        raise APIError(400, str(e)) from None
    except PolicyError as e:
        raise APIError(500, str(e), "internal_error") from None


def _extras(choice: dict[str, Any], body: _Common, out: PolicyOutput) -> None:
    if body.return_token_ids:
        choice["token_ids"] = out.completion_ids
    if body.return_entropies:
        choice["entropies"] = out.entropies


def _usage(outputs: list[PolicyOutput]) -> dict[str, int]:
    prompt = sum(len(o.prompt_ids or []) for o in outputs[:1])
    completion = sum(len(o.completion_ids or []) for o in outputs)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# ------------------------------------------------------------------------------------------------ streaming
def _sse(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        try:
            async for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
        except APIError as e:
            yield f"data: {json.dumps({'error': {'message': e.message, 'type': e.kind, 'code': e.status}})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _merged(model: ServedModel,
                  requests: list[PolicyRequest]) -> AsyncIterator[tuple[int, SampledToken | PolicyOutput]]:
    """The token streams of several requests, interleaved as they arrive, each item tagged with its index."""
    queue: asyncio.Queue[tuple[int, SampledToken | PolicyOutput | BaseException]] = asyncio.Queue()

    async def pump(index: int, request: PolicyRequest) -> None:
        try:
            async for item in model.stream(request):
                queue.put_nowait((index, item))
        except Exception as e:
            queue.put_nowait((index, e))

    tasks = [asyncio.create_task(pump(i, r)) for i, r in enumerate(requests)]
    try:
        finished = 0
        while finished < len(requests):
            index, item = await queue.get()
            if isinstance(item, PromptError):
                raise APIError(400, str(item))
            if isinstance(item, BaseException):
                raise APIError(500, f"generation failed: {item}", "internal_error")
            if isinstance(item, PolicyOutput):
                finished += 1
            yield index, item
    finally:
        for task in tasks:
            task.cancel()


class _TextStream:
    """Turns one choice's tokens into text deltas that never run ahead of the final text: a partial UTF-8
    character is held back, and so is a tail that could still become a stop string."""

    def __init__(self, model: ServedModel, stops: tuple[str, ...]):
        self.model, self.stops, self.sent = model, stops, 0
        self.ids: list[int] = []
        self.hold = max((len(s) for s in stops), default=1) - 1

    def add(self, token: int) -> str:
        self.ids.append(token)
        text = self.model.decode(self.ids)
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        safe = min(hits) if hits else len(text) - self.hold
        while safe > self.sent and text[safe - 1] == "\ufffd":
            safe -= 1
        delta, self.sent = text[self.sent:max(safe, self.sent)], max(safe, self.sent)
        return delta

    def finish(self, final_text: str) -> str:
        delta = final_text[self.sent:]
        self.sent = len(final_text)
        return delta


async def _chat_chunks(model: ServedModel, body: ChatCompletionRequest, requests: list[PolicyRequest], k: int,
                       tools: list[dict[str, Any]] | None) -> AsyncIterator[dict[str, Any]]:
    ident, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
    name = _TokenNames(model, body.return_tokens_as_token_ids)
    streams = [_TextStream(model, r.sampling.stop) for r in requests]
    outputs: list[PolicyOutput | None] = [None] * len(requests)

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": extra.pop("logprobs", None), "finish_reason": finish,
                  **extra}
        return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model.name,
                "choices": [choice]}

    for i in range(len(requests)):
        yield chunk(i, {"role": "assistant", "content": ""})
    async for index, item in _merged(model, requests):
        if isinstance(item, SampledToken):
            if tools:  # a tool call is only known once the whole text is there
                continue
            extra: dict[str, Any] = {}
            if body.logprobs:
                extra["logprobs"] = chat_logprobs([item], k, name)
            if body.return_token_ids:
                extra["token_ids"] = [item.id]
            if body.return_entropies:
                extra["entropies"] = [item.entropy]
            yield chunk(index, {"content": streams[index].add(item.id)}, **extra)
            continue
        outputs[index] = item
        calls = tool_calls_in(item.text, tools) if tools else None
        if calls:
            delta: dict[str, Any] = {"tool_calls": [{"index": j, **c} for j, c in enumerate(calls)]}
        else:
            delta = {"content": item.text if tools else streams[index].finish(item.text)}
        final: dict[str, Any] = {}
        if tools and body.return_token_ids:
            final["token_ids"] = item.completion_ids
        if tools and body.logprobs:
            final["logprobs"] = chat_logprobs(sampled_tokens(item), k, name)
        last = chunk(index, delta, "tool_calls" if calls else item.finish_reason, **final)
        if body.return_token_ids:
            last["prompt_token_ids"] = item.prompt_ids
        yield last
    if (body.stream_options or {}).get("include_usage"):
        yield {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model.name,
               "choices": [], "usage": _usage([o for o in outputs if o is not None])}


async def _completion_chunks(model: ServedModel, body: CompletionRequest, requests: list[PolicyRequest],
                             k: int) -> AsyncIterator[dict[str, Any]]:
    ident, created = f"cmpl-{secrets.token_hex(12)}", int(time.time())
    name = _TokenNames(model, body.return_tokens_as_token_ids)
    streams = [_TextStream(model, r.sampling.stop) for r in requests]
    outputs: list[PolicyOutput | None] = [None] * len(requests)

    def chunk(index: int, text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"id": ident, "object": "text_completion", "created": created, "model": model.name,
                "choices": [{"index": index, "text": text, "logprobs": extra.pop("logprobs", None),
                             "finish_reason": finish, **extra}]}

    async for index, item in _merged(model, requests):
        if isinstance(item, SampledToken):
            extra: dict[str, Any] = {}
            if body.logprobs is not None:
                extra["logprobs"] = completion_logprobs([item], k, name)
            if body.return_token_ids:
                extra["token_ids"] = [item.id]
            if body.return_entropies:
                extra["entropies"] = [item.entropy]
            yield chunk(index, streams[index].add(item.id), **extra)
            continue
        outputs[index] = item
        extra = {"prompt_token_ids": item.prompt_ids} if body.return_token_ids else {}
        yield chunk(index, streams[index].finish(item.text), item.finish_reason, **extra)
    if (body.stream_options or {}).get("include_usage"):
        yield {"id": ident, "object": "text_completion", "created": created, "model": model.name, "choices": [],
               "usage": _usage([o for o in outputs if o is not None])}
