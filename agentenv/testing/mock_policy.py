"""A mock OpenAI-compatible policy server: agentenv's own HTTP layer over a scripted model, with latency.

Fault, load and soak tests (reliability §4) need a policy server that answers fast or slowly on demand,
never tires, and needs no weights: :class:`ScriptedModel` answers each request with ``respond(prompt
text)``, through :func:`agentenv.policies.openai_api.create_openai_app`, so the client, the wire format and
the server's queueing are the real ones. ``slots`` is the engine's ``max_num_seqs`` (more requests wait);
``latency`` is a generation's time, fixed or drawn uniformly from a range. Token ids come from
:class:`ByteTokenizer` (bytes plus an end token), so token-exact mode works without tokenizer files.

In this process (a thread) for light tests, or in its own process for load tests, where sharing this
process's GIL would measure the server instead of the collector::

    with MockPolicyProcess("countdown", latency=(0.01, 0.5)) as server:
        policy = OpenAIPolicy(server.url, model="mock")
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from agentenv.policy import PolicyOutput, PolicyRequest, SampledToken

END = 256  # ByteTokenizer's end-of-turn token
MODEL = "mock"


class ByteTokenizer:
    """A ChatML tokenizer over bytes (ids 0-255) plus ``<|im_end|>`` (256): token-exact mode with no files."""

    eos_token_id = END
    all_special_tokens = ("<|im_end|>",)

    def apply_chat_template(self, conversation: Any, tokenize: bool = False, add_generation_prompt: bool = False,
                            **kwargs: Any) -> str:
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in conversation)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")

    def encode(self, text: str, split_special_tokens: bool = False, **kwargs: Any) -> list[int]:
        pieces = [text] if split_special_tokens else text.split("<|im_end|>")
        ids: list[int] = []
        for i, piece in enumerate(pieces):
            ids += ([END] if i else []) + list(piece.encode())
        return ids

    def decode(self, ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str:
        out = b"".join(b"" if i == END and skip_special_tokens else b"<|im_end|>" if i == END else bytes([i])
                       for i in ids)
        return out.decode(errors="replace")


def countdown_answer(prompt: str) -> str:
    """The expert of ``agentenv-testing/Countdown-v0``: one less than the last number the env showed."""
    numbers = re.findall(r"(?:from|Now) (\d+)", prompt)
    return f"Action: {int(numbers[-1]) - 1}" if numbers else "Action: 0"


def _responders() -> dict[str, Callable[[str], str]]:
    from agentenv.testing.hostile import hostile_code_action

    return {"countdown": countdown_answer, "hostile-code": hostile_code_action}


class ScriptedModel:
    """An engine for ``create_openai_app`` answering ``respond(prompt text)``; see the module docstring."""

    def __init__(self, respond: Callable[[str], str] = countdown_answer, slots: int = 64,
                 latency: float | tuple[float, float] = 0.0, seed: int = 0, name: str = MODEL):
        self.name, self.version, self.max_context = name, 0, 1 << 20
        self.tokenizer = ByteTokenizer()
        self.respond, self.slots, self.latency = respond, slots, latency
        self.in_flight = self.max_in_flight = self.generations = 0
        self._rng = random.Random(seed)
        self._slots: asyncio.Semaphore | None = None

    def _delay(self) -> float:
        return self._rng.uniform(*self.latency) if isinstance(self.latency, tuple) else self.latency

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.slots)
        async with self._slots:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self._delay())
                self.generations += len(requests)
                return [self._answer(r) for r in requests]
            finally:
                self.in_flight -= 1

    def _answer(self, request: PolicyRequest) -> PolicyOutput:
        if request.prompt_ids is not None:
            prompt = self.tokenizer.decode(request.prompt_ids)
        else:
            prompt = "\n".join(str(m["content"]) for m in request.messages)
        text = self.respond(prompt)
        # with stop strings, the model "samples" the first one after its answer and stops there: the text ends
        # before it, the token ids keep it (as vLLM's do)
        stop = request.sampling.stop
        ids = [*(text + stop[0]).encode()] if stop else [*text.encode(), END]
        return PolicyOutput(text=text, prompt_ids=request.prompt_ids, completion_ids=ids,
                            logprobs=[-0.25] * len(ids), entropies=[0.5] * len(ids), entropy_kind="exact",
                            finish_reason="stop", policy_version=self.version)

    async def stream(self, request: PolicyRequest) -> AsyncIterator[SampledToken | PolicyOutput]:
        from agentenv.policies.openai_api import sampled_tokens

        [out] = await self.act([request])
        for token in sampled_tokens(out):
            yield token
        yield out

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def load_weights(self, path: str, version: int) -> None:
        self.version = version

    def clear_prefix_cache(self) -> None:
        pass


def mock_policy_app(model: ScriptedModel) -> Any:
    from agentenv.policies.openai_api import create_openai_app

    return create_openai_app(model)


class MockPolicyProcess:
    """The mock server in a process of its own (``python -m agentenv.testing.mock_policy``), on 127.0.0.1."""

    def __init__(self, respond: str = "countdown", slots: int = 64, latency: float | tuple[float, float] = 0.0,
                 seed: int = 0):
        low, high = latency if isinstance(latency, tuple) else (latency, latency)
        self.args = ["--respond", respond, "--slots", str(slots), "--latency", f"{low},{high}", "--seed", str(seed)]
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> MockPolicyProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "agentenv.testing.mock_policy", *self.args],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            self.__exit__()
            raise RuntimeError(f"the mock policy server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a mock OpenAI-compatible policy server (tests)")
    parser.add_argument("--respond", default="countdown", choices=sorted(_responders()))
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--latency", default="0,0", help="LOW,HIGH seconds per generation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    low, high = (float(x) for x in args.latency.split(","))
    model = ScriptedModel(_responders()[args.respond], args.slots, (low, high), args.seed)
    import uvicorn

    from agentenv.serving import bind_socket

    sock = bind_socket("127.0.0.1", args.port)
    print(f"ready {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(mock_policy_app(model), log_level="warning", access_log=False))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
