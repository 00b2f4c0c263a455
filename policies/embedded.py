"""An in-process transformers policy: batched, token-exact, with its own sampling loop.

Concurrent ``act`` calls (one per episode) put their requests on a queue; one background task gathers up
to ``max_batch_size`` of them within ``batch_wait_ms`` and runs one batched generation in a worker thread,
so the event loop never blocks. Prompts are rendered with :class:`~agentenv.rendering.ChatRenderer`, so a
request's :class:`~agentenv.policy.Continuation` is extended rather than re-tokenized.

The sampling loop is ours (left padding, attention mask, position ids, KV cache) so that every sampled
token comes with its log-prob under the distribution it was drawn from (``logits / temperature``, then
top-p, renormalised), the top-k log-probs of that distribution and its exact entropy. Greedy decoding
(``temperature == 0``) reports these statistics for temperature 1 (with top-p), where they are informative.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import inspect
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StaticCache

from agentenv.policy import PolicyError, PolicyOutput, PolicyRequest, PromptError, SampledToken, SamplingParams
from agentenv.rendering import ChatRenderer

from .catalog import resolve_model


@dataclass
class _Row:
    """One request's generation state."""

    prompt: list[int]
    params: SamplingParams
    limit: int
    generator: torch.Generator | None
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_ids: list[list[int]] = field(default_factory=list)
    top_logprobs: list[list[float]] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    finish: str | None = None
    trajectory_id: str = ""
    #: a fork's parent episode, whose cached prefix it may share
    prefix_hint: str = ""
    #: per layer (keys, values) of ``prompt[:reused]``, shaped [kv heads, reused, head dim]
    prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    reused: int = 0
    #: called from the worker thread with each sampled token (streaming)
    on_token: Callable[[SampledToken], None] | None = None
    #: where the text ends when a stop string was sampled (the text before the first stop string)
    text_end: int | None = None


@dataclass
class _Prefix:
    """The keys and values an episode's last turn left behind, for its next turn to extend."""

    ids: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.layers)


class TransformersPolicy:
    """Serves a local Hugging Face causal LM (a directory or a catalog name, see :mod:`.catalog`).

    ``batch_sizes`` counts the generations run per batch size (``{batch size: number of batches}``).

    Prefix reuse: the keys and values of each episode's last turn (keyed by ``trajectory_id``) are kept,
    up to ``prefix_cache_mb`` (default: an eighth of the machine's memory, at most 2 GB; finished
    episodes' prefixes are the least recently used and go first), and the next turn of that episode
    computes only its new tokens, as a serving engine's prefix cache does. Multi-turn prompts grow every
    turn, so without it prefilling the history dominates CPU time. ``prefix_tokens`` counts
    ``{"reused": ..., "computed": ...}`` prompt tokens.
    Weight updates (:meth:`load_weights`, :meth:`load_state_dict`) wait for the running batch, then swap
    the weights, clear the prefix cache and set :attr:`version`; requests queued meanwhile run on the new
    weights.
    """

    wants_expert = False

    def __init__(self, model: str, device: str = "cpu", dtype: str = "float32", max_batch_size: int = 16,
                 batch_wait_ms: float = 5, name: str | None = None, prefix_cache_mb: float | None = None):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if prefix_cache_mb is None:
            memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
            prefix_cache_mb = min(2048.0, memory_mb / 8)
        if prefix_cache_mb < 0:
            raise ValueError(f"prefix_cache_mb must be >= 0, got {prefix_cache_mb}")
        torch_dtype = getattr(torch, dtype, None)
        if not isinstance(torch_dtype, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
        path = resolve_model(model)
        self.name = name or path.name
        self.version = 0
        self.device = torch.device(device)
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_ms / 1000
        self.tokenizer: Any = cast(Any, AutoTokenizer.from_pretrained(path))
        self.model: Any = cast(Any, AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype))
        self.model.to(self.device).eval()
        self.renderer = ChatRenderer(self.tokenizer)
        self.eos_ids = self._eos_ids()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
        # transformers 5.x renamed `past_key_values` to `cache`
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", 0) or 1 << 30)
        self.batch_sizes: Counter[int] = Counter()
        self.prefix_cache_bytes = int(prefix_cache_mb * 2**20)
        self.prefix_tokens: Counter[str] = Counter()
        self._prefixes: OrderedDict[str, _Prefix] = OrderedDict()
        self._queue: asyncio.Queue[_Queued] | None = None
        self._weights_lock = threading.Lock()  # held by a running batch and by a weight update
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)}
        vocab = self.tokenizer.get_vocab()
        ids |= {vocab.get("<|endoftext|>"), vocab.get("<|im_end|>") if self.tokenizer.chat_template else None}
        out: set[int] = set()
        for i in ids:
            out |= set(i) if isinstance(i, list) else {i} if isinstance(i, int) else set()
        if not out:
            raise ValueError("the tokenizer defines no end-of-sequence token")
        return out

    # ----- the Policy protocol ------------------------------------------------------------------------------
    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        if self._closed:
            raise PolicyError(f"policy {self.name} is closed")
        queue = self._ensure_worker()
        loop = asyncio.get_running_loop()
        futures = []
        for request in requests:
            future: asyncio.Future[PolicyOutput] = loop.create_future()
            queue.put_nowait((request, future, None))
            futures.append(future)
        return list(await asyncio.gather(*futures))

    async def stream(self, request: PolicyRequest) -> AsyncIterator[SampledToken | PolicyOutput]:
        """Yield each token as it is sampled, then the finished :class:`PolicyOutput`."""
        if self._closed:
            raise PolicyError(f"policy {self.name} is closed")
        queue = self._ensure_worker()
        loop = asyncio.get_running_loop()
        tokens: asyncio.Queue[SampledToken] = asyncio.Queue()
        future: asyncio.Future[PolicyOutput] = loop.create_future()

        def push(token: SampledToken) -> None:  # on the worker thread; runs on the loop before ``future`` is set
            loop.call_soon_threadsafe(tokens.put_nowait, token)

        queue.put_nowait((request, future, push))
        try:
            while not future.done() or not tokens.empty():
                getter = asyncio.ensure_future(tokens.get())
                waiting: set[asyncio.Future[Any]] = {getter, future}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            yield future.result()
        finally:
            if not future.done():
                future.cancel()  # the caller stopped listening: the batcher drops the request if not started

    async def aclose(self) -> None:
        self._closed = True
        if self._worker is not None and self._loop is asyncio.get_running_loop():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._queue is not None and not self._queue.empty():
            _, future, _ = self._queue.get_nowait()
            if not future.done():
                future.set_exception(PolicyError(f"policy {self.name} was closed"))
        self._worker = self._queue = None

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def tokenize_action(self, request: PolicyRequest, text: str) -> PolicyOutput:
        """Another actor's action (a teacher's) as this policy's tokens: the prompt it would have seen, and
        the text followed by the end-of-turn token, so the episode's token stream stays continuous."""
        prompt = self.renderer.render(request.messages, request.continuation, request.tools)
        return PolicyOutput(text=text, prompt_ids=prompt, completion_ids=self.label_tokens(text),
                            token_source="teacher", policy_version=self.version)

    def label_tokens(self, text: str) -> list[int]:
        """``text`` as a complete assistant reply: its tokens and the end-of-turn token."""
        return [*self.renderer.encode(text), int(self.tokenizer.eos_token_id)]

    def encode(self, text: str) -> list[int]:
        """A text prompt's tokens as a completions endpoint takes them (special tokens added, as vLLM does)."""
        return list(self.tokenizer(text).input_ids)

    def token_text(self, token_id: int) -> str:
        """A token as text, special tokens included (how OpenAI-style log-probs name tokens)."""
        return str(self.tokenizer.decode([token_id], skip_special_tokens=False))

    def clear_prefix_cache(self) -> None:
        """Forget every kept prefix (they are stale once the weights change)."""
        self._prefixes.clear()

    @contextlib.contextmanager
    def updating_weights(self) -> Iterator[None]:
        """Hold generation off while the caller changes the weights in place (a trainer sharing this
        model); on exit the prefix cache is cleared and the version goes up by one."""
        with self._weights_lock:
            yield
            self._prefixes.clear()
            self.version += 1

    def load_state_dict(self, state_dict: dict[str, torch.Tensor], version: int) -> None:
        """Swap in new weights (all of the model's parameters, by name) between batches."""
        with self._weights_lock:
            missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
            missing = [m for m in missing if not _is_tied(self.model, m)]
            if missing or unexpected:
                raise ValueError(f"the new weights do not match {self.name}: missing {missing[:5]}, "
                                 f"unexpected {unexpected[:5]}")
            self._prefixes.clear()
            self.version = version

    def load_weights(self, path: str | os.PathLike[str], version: int) -> None:
        """Load the weights of a Hugging Face checkpoint directory (safetensors files) of the same model."""
        from safetensors.torch import load_file

        files = sorted(Path(path).expanduser().glob("*.safetensors"))
        if not files:
            raise ValueError(f"no *.safetensors files in {path}")
        state: dict[str, torch.Tensor] = {}
        for file in files:
            state.update(load_file(file, device=str(self.device)))
        self.load_state_dict(state, version)

    # ----- batching -----------------------------------------------------------------------------------------
    def _ensure_worker(self) -> asyncio.Queue[_Queued]:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.done() or self._loop is not loop:
            self._loop, self._queue = loop, asyncio.Queue()  # (a new event loop gets its own queue and task)
            self._worker = loop.create_task(self._batch_loop(self._queue), name=f"{self.name}-batcher")
        return self._queue

    async def _batch_loop(self, queue: asyncio.Queue[_Queued]) -> None:
        while True:
            batch = [await queue.get()]
            # Let the other episodes' requests arrive (sleeping, not waiting on the queue with a timeout,
            # which can lose an item on Python 3.11), then take what is there.
            if queue.qsize() < self.max_batch_size - 1:
                await asyncio.sleep(self.batch_wait_s)
            while len(batch) < self.max_batch_size and not queue.empty():
                batch.append(queue.get_nowait())
            batch = [(r, f, t) for r, f, t in batch if not f.done()]  # drop requests whose caller gave up
            if not batch:
                continue
            self.batch_sizes[len(batch)] += 1
            try:
                results = await asyncio.to_thread(self._run_batch, [r for r, _, _ in batch],
                                                  [t for _, _, t in batch])
            except asyncio.CancelledError:
                for _, f, _ in batch:
                    if not f.done():
                        f.set_exception(PolicyError(f"policy {self.name} was closed"))
                raise
            except Exception as e:  # a bug in the batching code itself: fail this batch, keep serving
                results = [PolicyError(f"generation failed: {e!r}") for _ in batch]
            for (_, f, _), result in zip(batch, results, strict=True):
                if f.done():
                    continue
                if isinstance(result, BaseException):
                    f.set_exception(result)
                else:
                    f.set_result(result)

    # ----- generation (worker thread) -----------------------------------------------------------------------
    def _run_batch(self, requests: list[PolicyRequest], on_token: list[_OnToken | None] | None = None
                   ) -> list[PolicyOutput | BaseException]:
        with self._weights_lock:
            return self._run_batch_locked(requests, on_token or [None] * len(requests))

    def _run_batch_locked(self, requests: list[PolicyRequest],
                          on_token: list[_OnToken | None]) -> list[PolicyOutput | BaseException]:
        results: list[PolicyOutput | BaseException] = [PolicyError("not run")] * len(requests)
        rows: dict[int, _Row] = {}
        vocab = int(getattr(self.model.config, "vocab_size", 0) or len(self.tokenizer))
        for i, request in enumerate(requests):
            try:
                prompt = (list(request.prompt_ids) if request.prompt_ids is not None
                          else self.renderer.render(request.messages, request.continuation, request.tools))
            except Exception as e:
                results[i] = PromptError(f"could not render the prompt with the chat template: {e}")
                continue
            if not prompt or any(not 0 <= t < vocab for t in prompt):
                results[i] = PromptError(f"the prompt must be a non-empty list of token ids in [0, {vocab})")
                continue
            if len(prompt) >= self.max_context:
                results[i] = PromptError(
                    f"the prompt has {len(prompt)} tokens but {self.name} has a context of {self.max_context} "
                    "tokens (max_position_embeddings); shorten the conversation (PromptConfig.window)")
                continue
            sp = request.sampling
            generator = None
            if sp.seed is not None:
                generator = torch.Generator(self.device).manual_seed(sp.seed)
            row = _Row(prompt, sp, min(sp.max_tokens, self.max_context - len(prompt)), generator,
                       trajectory_id=request.trajectory_id, on_token=on_token[i],
                       prefix_hint=request.prefix_hint)
            self._take_prefix(row)
            rows[i] = row
        if rows:
            try:
                self._generate(list(rows.values()))
            except Exception as e:
                for i in rows:
                    results[i] = PolicyError(f"generation failed: {e!r}")
                return results
            finally:
                _release_freed_memory()
        for i, row in rows.items():
            text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
            results[i] = PolicyOutput(
                text=text if row.text_end is None else text[:row.text_end],
                prompt_ids=row.prompt, completion_ids=row.ids, logprobs=row.logprobs,
                top_ids=row.top_ids if row.params.top_logprobs else None,
                top_logprobs=row.top_logprobs if row.params.top_logprobs else None,
                entropies=row.entropies, entropy_kind="exact", token_source="sampled",
                finish_reason=row.finish or "length",
                policy_version=self.version,
            )
        return results

    def _hit_stop(self, row: _Row) -> bool:
        """Whether the text now contains a stop string; sets ``row.text_end`` to the first one's start."""
        longest = max(len(s) for s in row.params.stop)
        tail = self.tokenizer.decode(row.ids[-(longest + 2):], skip_special_tokens=True)
        if not any(s in tail for s in row.params.stop):
            return False
        text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
        row.text_end = min(i for i in (text.find(s) for s in row.params.stop) if i >= 0)
        return True

    # ----- prefix reuse (worker thread) ---------------------------------------------------------------------
    def _take_prefix(self, row: _Row) -> None:
        """Give ``row`` the kept keys/values of its episode's longest common prefix with its prompt."""
        kept = self._prefixes.pop(row.trajectory_id, None) if row.trajectory_id else None
        if kept is None and row.prefix_hint:  # a fork: its parent's cache is shared, not taken
            kept = self._prefixes.get(row.prefix_hint)
            if kept is not None:
                self._prefixes.move_to_end(row.prefix_hint)
        if kept is None:
            return
        n = 0
        limit = min(len(kept.ids), len(row.prompt) - 1)  # at least one prompt token must be fed
        while n < limit and kept.ids[n] == row.prompt[n]:
            n += 1
        if n:
            row.prefix = [(k[:, :n], v[:, :n]) for k, v in kept.layers]
            row.reused = n

    def _keep_prefixes(self, rows: list[_Row], cache: Any, columns: list[torch.Tensor]) -> None:
        """Keep each row's keys/values (its prompt and all but its last sampled token) for its next turn."""
        if self.prefix_cache_bytes == 0:
            return
        layers = cache.layers
        for b, row in enumerate(rows):
            if not row.trajectory_id or not row.ids:
                continue
            cols = columns[b]
            kept = _Prefix([*row.prompt, *row.ids[:-1]],
                           [(layer.keys[b].index_select(1, cols), layer.values[b].index_select(1, cols))
                            for layer in layers])
            self._prefixes[row.trajectory_id] = kept
        total = sum(p.nbytes for p in self._prefixes.values())
        while self._prefixes and total > self.prefix_cache_bytes:  # least recently used first
            total -= self._prefixes.popitem(last=False)[1].nbytes

    def _prefilled_cache(self, rows: list[_Row], room: int) -> tuple[Any, torch.Tensor]:
        """A static cache with ``room`` free columns after each row's reused prefix (left-padded), and the
        attention mask of the prefix columns.

        Static, not dynamic: a dynamic cache concatenates every layer's keys and values on each decoded
        token, which copies the whole cache per step and dominates once prompts run to thousands of tokens.
        """
        width = max(r.reused for r in rows)
        mask = torch.zeros((len(rows), width), dtype=torch.long, device=self.device)
        cache = StaticCache(config=self.model.config, max_cache_len=width + room)
        if width == 0:
            return cache, mask
        template = next(r.prefix for r in rows if r.prefix)
        for layer, (k0, v0) in enumerate(template):
            keys = k0.new_zeros((len(rows), k0.shape[0], width, k0.shape[2]))
            values = v0.new_zeros((len(rows), v0.shape[0], width, v0.shape[2]))
            for b, row in enumerate(rows):
                if row.prefix:
                    keys[b, :, width - row.reused:] = row.prefix[layer][0]
                    values[b, :, width - row.reused:] = row.prefix[layer][1]
            cache.update(keys, values, layer)
        for b, row in enumerate(rows):
            mask[b, width - row.reused:] = 1
            row.prefix = None
        return cache, mask

    @torch.inference_mode()
    def _generate(self, rows: list[_Row]) -> None:
        # the prompt tokens still to compute, left-padded after the cached (also left-padded) prefix
        width = max(len(r.prompt) - r.reused for r in rows)
        cache_obj, cached_mask = self._prefilled_cache(rows, room=width + max(r.limit for r in rows))
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        new_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, row in enumerate(rows):  # left padding: every row's next token is at the last column
            todo = row.prompt[row.reused:]
            ids[b, width - len(todo):] = torch.tensor(todo)
            new_mask[b, width - len(todo):] = 1
            self.prefix_tokens["reused"] += row.reused
            self.prefix_tokens["computed"] += len(todo)
        ids = ids.to(self.device)
        mask = torch.cat([cached_mask, new_mask.to(self.device)], dim=-1)
        prompt_columns = [m.nonzero().flatten() for m in mask]
        positions = ((mask.cumsum(-1) - 1).clamp(min=0))[:, cached_mask.shape[1]:]
        temperature = torch.tensor([r.params.temperature or 1.0 for r in rows], device=self.device)[:, None]
        top_p = torch.tensor([r.params.top_p for r in rows], device=self.device)[:, None]
        max_k = max(r.params.top_logprobs for r in rows)
        cache = {self._cache_arg: cache_obj}  # filled in place by each forward
        prompt_width = mask.shape[1]
        for _ in range(max(r.limit for r in rows)):
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             logits_to_keep=1, **cache)
            logp = torch.log_softmax(out.logits[:, -1, :].float() / temperature, dim=-1)
            if (top_p < 1).any():
                sorted_lp, order = logp.sort(dim=-1, descending=True)
                probs = sorted_lp.exp()
                drop = (probs.cumsum(-1) - probs) >= top_p  # the mass before this token already reaches top_p
                logp = torch.log_softmax(logp.masked_fill(drop.scatter(-1, order, drop), -torch.inf), dim=-1)
            probs = logp.exp()
            entropy = torch.where(probs > 0, -probs * logp, 0.0).sum(-1).clamp(min=0)
            top = logp.topk(max_k, dim=-1) if max_k else None
            next_ids = torch.full((len(rows),), self.pad_id, dtype=torch.long, device=self.device)
            for b, row in enumerate(rows):
                if row.finish is not None:
                    continue
                if row.params.temperature == 0:
                    token = int(logp[b].argmax())
                else:
                    token = int(torch.multinomial(probs[b], 1, generator=row.generator))
                next_ids[b] = token
                row.ids.append(token)
                row.logprobs.append(float(logp[b, token]))
                row.entropies.append(float(entropy[b]))
                if top is not None and row.params.top_logprobs:
                    k = row.params.top_logprobs
                    row.top_ids.append(top.indices[b, :k].tolist())
                    row.top_logprobs.append(top.values[b, :k].tolist())
                if row.on_token is not None:
                    row.on_token(SampledToken(token, row.logprobs[-1], row.top_ids[-1] if row.top_ids else [],
                                              row.top_logprobs[-1] if row.top_logprobs else [], row.entropies[-1]))
                if token in self.eos_ids or (row.params.stop and self._hit_stop(row)):
                    row.finish = "stop"
                elif len(row.ids) >= row.limit:
                    row.finish = "length"
            if all(r.finish is not None for r in rows):
                break
            ids = next_ids[:, None]
            mask = torch.cat([mask, torch.ones_like(ids)], dim=-1)
            positions = positions[:, -1:] + 1
        # the i-th sampled token (i = 0, 1, ...) was fed by the next forward, into column prompt_width + i
        columns = [torch.cat([prompt_columns[b], torch.arange(prompt_width, prompt_width + len(row.ids) - 1,
                                                              device=self.device)]) for b, row in enumerate(rows)]
        self._keep_prefixes(rows, cache_obj, columns)


_OnToken = Callable[[SampledToken], None]
_Queued = tuple[PolicyRequest, "asyncio.Future[PolicyOutput]", _OnToken | None]


def _is_tied(model: Any, name: str) -> bool:
    """Whether parameter ``name`` is tied to another (an output embedding that shares the input's)."""
    tied = getattr(model, "_tied_weights_keys", None) or {}
    names = tied.keys() if isinstance(tied, dict) else tied
    return name in names and bool(getattr(model.config, "tie_word_embeddings", False))


def _release_freed_memory() -> None:
    """Hand freed heap memory back to the OS after a batch.

    Each batch allocates and frees caches of a new size (prompts grow every turn); glibc keeps such freed
    blocks in its heap, and over a long collection the process's resident memory grows far past what it
    uses (a 60-episode ALFWorld run reached 24 GB and was OOM-killed). ``malloc_trim`` returns them.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()
