"""Env server benchmark: per-step overhead, sessions held, and agentenv's server vs openenv-core's.

    python benchmarks/env_server.py [--quick]

1. Step latency (median, p99) of a local env and of the same env served by ``agentenv serve-env`` through
   ``RemoteEnv`` over each transport (WebSocket and HTTP; sync and async), and the ratio remote / local.
2. Sessions held: N concurrent episodes (N = 64, 256, 512, 1024) through ``RemoteEnv.step_async`` over the
   WebSocket against one server process, each resetting and taking several steps; success rate, p50/p99
   step latency, steps/s. Target: all succeed at N = 512 (>= 256 sessions per core on 2 cores).
3. Per-step overhead (remote step - in-process step, medians) of agentenv's server and of openenv-core's
   (0.3.0) on identical env logic, each through its own async client: agentenv's HTTP and WebSocket
   sessions via ``RemoteEnv``, openenv's WebSocket sessions via ``EnvClient`` (its HTTP ``/step`` is
   stateless: a new env per request, so multi-step episodes need its WebSocket). Target: ours <= 1/3 of
   theirs. The env is served twice: as a plain sync env (its steps run in a worker thread, as openenv runs
   them in a per-session executor) and declaring ``nonblocking_steps = True`` (steps run inline on the
   server's event loop; see agentenv.env_server).
4. Where the WebSocket step's time goes: a bare uvicorn WebSocket echo (the transport floor), a bare
   websockets client against our server (server framing and handling), RemoteEnv (client), and the thread
   hop (plain env vs inline env).
   openenv-core pulls heavy dependencies (gradio...), so it lives in its own venv, ``.venv-openenv``, made
   here on first use; its server and client run in processes of that venv.

Both servers run in their own process on 127.0.0.1; the env is the pure-Python ``GuessLogic`` below,
wrapped once as an agentenv Env and once as an openenv Environment. The script re-runs itself with
``--serve-ours``, ``--serve-openenv`` and ``--openenv-client`` for those processes, so this file imports
only the standard library at the top (the openenv venv does not have agentenv's dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OPENENV_VENV = REPO / ".venv-openenv"
OPENENV_PIN = "openenv-core==0.3.0"
ACTION = "Action: 0"  # always too low: episodes never end during a latency run


class GuessLogic:
    """The env logic both servers run: guess a number in [1, 1000]; 'higher'/'lower' answers."""

    def __init__(self) -> None:
        self.secret, self.turns = 1, 0

    def reset(self, seed: int | None) -> str:
        self.secret, self.turns = (seed or 0) * 7919 % 1000 + 1, 0
        return "I am thinking of a number between 1 and 1000. Guess it: 'Action: <number>'."

    def step(self, text: str) -> tuple[str, float, bool]:
        self.turns += 1
        match = re.search(r"-?\d+", text)
        if match is None:
            return "Say a number.", 0.0, False
        guess = int(match.group())
        if guess == self.secret:
            return f"{guess} is correct!", 1.0, True
        return f"{guess} is too {'low' if guess < self.secret else 'high'}.", 0.0, False


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def stats_ms(xs: list[float]) -> dict[str, float]:
    return {"median": 1000 * statistics.median(xs), "p99": 1000 * percentile(xs, 0.99)}


# ----- agentenv side ------------------------------------------------------------------------------------
def register_ours(inline: bool = False) -> str:
    import gymnasium as gym

    from agentenv.env import Env, StepResult
    from agentenv.messages import observation
    from agentenv.parsing import ParsedAction

    class BenchGuessEnv(Env):
        family = "bench"

        def __init__(self, **kwargs: Any):
            super().__init__(max_invalid_actions=None, **kwargs)
            self.logic = GuessLogic()

        def _reset(self, options: Any) -> Any:
            return observation(self.logic.reset(self.np_random_seed)), {}

        def parse_action(self, text: str) -> ParsedAction:
            return ParsedAction(text=text, command=text)

        def _step(self, action: ParsedAction) -> StepResult:
            text, reward, done = self.logic.step(action.text)
            return StepResult(observation(text), reward, terminated=done)

    class BenchGuessInlineEnv(BenchGuessEnv):
        nonblocking_steps = True  # a pure-Python microsecond step: safe to run on the server's event loop

    env_id = "agentenv/BenchGuessInline-v0" if inline else "agentenv/BenchGuess-v0"
    gym.register(env_id, entry_point=BenchGuessInlineEnv if inline else BenchGuessEnv, disable_env_checker=True)
    return env_id


def serve_ours(inline: bool) -> None:
    from agentenv.env_server import serve_env

    serve_env(register_ours(inline), port=0, max_sessions=4096)


def serve_echo() -> None:
    """A bare ASGI WebSocket echo on uvicorn (same loop/ws choices as ours): the transport's floor."""
    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"]})

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(f"echo server: http://{host}:{port}", flush=True)

    Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws_per_message_deflate=False)).run()


def start(cmd: list[str], env: dict[str, str] | None = None, quiet: bool = False) -> tuple[subprocess.Popen[str], str]:
    """Start a server process and wait for its ready line; returns it and its URL. ``quiet`` drops its stderr
    (openenv's server prints a traceback for every client that disconnects)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL if quiet else None, text=True,
                            cwd=REPO, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"http://[\d.]+:\d+", line)
    if found is None:
        proc.kill()
        raise RuntimeError(f"server {cmd} did not start: {line!r}")
    return proc, found.group()


def local_latency(steps: int) -> list[float]:
    from agentenv.registry import make

    env = make(register_ours())
    env.reset(seed=1)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        env.step(ACTION)
        times.append(time.perf_counter() - t0)
    return times


def remote_latency(url: str, steps: int, transport: str) -> tuple[list[float], list[float]]:
    from agentenv.remote_env import RemoteEnv

    env = RemoteEnv(url, transport=transport)
    env.reset(seed=1)
    for _ in range(20):
        env.step(ACTION)
    sync = []
    for _ in range(steps):
        t0 = time.perf_counter()
        env.step(ACTION)
        sync.append(time.perf_counter() - t0)
    env.close()

    async def run() -> list[float]:
        aenv = RemoteEnv(url, transport=transport)
        await aenv.reset_async(seed=1)
        for _ in range(20):
            await aenv.step_async(ACTION)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            await aenv.step_async(ACTION)
            times.append(time.perf_counter() - t0)
        await aenv.close_async()
        return times

    return sync, asyncio.run(run())


def bare_ws_latency(url: str, steps: int, messages: list[str]) -> list[float]:
    """Round trips of a bare ``websockets`` client (no RemoteEnv): ``messages[0]`` once, then ``messages[-1]``."""
    from websockets.asyncio.client import connect

    async def run() -> list[float]:
        ws = await connect(url.replace("http", "ws", 1) + "/sessions/ws", compression=None)
        await ws.send(messages[0])
        await ws.recv()
        times = []
        for i in range(steps + 20):
            t0 = time.perf_counter()
            await ws.send(messages[-1])
            await ws.recv()
            if i >= 20:
                times.append(time.perf_counter() - t0)
        await ws.close()
        return times

    return asyncio.run(run())


def sessions_held(url: str, n: int, steps: int, transport: str = "ws") -> dict[str, float]:
    from agentenv.remote_env import RemoteEnv

    async def episode(seed: int, latencies: list[float]) -> bool:
        env = RemoteEnv(url, timeout_s=120, transport=transport)
        try:
            await env.reset_async(seed=seed)
            for _ in range(steps):
                t0 = time.perf_counter()
                await env.step_async(ACTION)
                latencies.append(time.perf_counter() - t0)
            return True
        except Exception:
            return False
        finally:
            await env.close_async()

    async def run() -> tuple[list[bool], list[float], float]:
        latencies: list[float] = []
        t0 = time.perf_counter()
        ok = await asyncio.gather(*(episode(i, latencies) for i in range(n)))
        return list(ok), latencies, time.perf_counter() - t0

    ok, lat, wall = asyncio.run(run())
    return {"ok": sum(ok) / n, "p50": 1000 * percentile(lat, 0.5), "p99": 1000 * percentile(lat, 0.99),
            "steps_per_s": len(lat) / wall, "wall": wall}


# ----- openenv side (runs under .venv-openenv) -----------------------------------------------------------
def openenv_classes() -> tuple[Any, Any, Any, Any]:
    from openenv.core import EnvClient
    from openenv.core.client_types import StepResult
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, Observation, State

    class GuessAction(Action):
        message: str

    class GuessObservation(Observation):
        text: str = ""

    class GuessEnvironment(Environment):
        SUPPORTS_CONCURRENT_SESSIONS = True

        def __init__(self) -> None:
            super().__init__()
            self.logic, self._state = GuessLogic(), State(episode_id="0", step_count=0)

        def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> Any:
            self._state = State(episode_id=episode_id or "0", step_count=0)
            return GuessObservation(text=self.logic.reset(seed), done=False, reward=0.0)

        def step(self, action: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
            self._state.step_count += 1
            text, reward, done = self.logic.step(action.message)
            return GuessObservation(text=text, done=done, reward=reward)

        @property
        def state(self) -> Any:
            return self._state

    class GuessClient(EnvClient):
        def _step_payload(self, action: Any) -> dict[str, Any]:
            return {"message": action.message}

        def _parse_result(self, payload: dict[str, Any]) -> Any:
            obs = GuessObservation(**payload.get("observation", {}), done=payload.get("done", False),
                                   reward=payload.get("reward"))
            return StepResult(observation=obs, reward=payload.get("reward"), done=payload.get("done", False))

        def _parse_state(self, payload: dict[str, Any]) -> Any:
            return State(**payload)

    return GuessEnvironment, GuessAction, GuessObservation, GuessClient


def serve_openenv() -> None:
    import uvicorn
    from openenv.core.env_server.http_server import create_app

    environment, action, obs, _ = openenv_classes()
    app = create_app(environment, action, obs, env_name="bench_guess", max_concurrent_envs=2048)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(f"openenv server: http://{host}:{port}", flush=True)

    Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws_max_size=2**24)).run()


def openenv_client(url: str, steps: int, sessions: list[int], session_steps: int) -> None:
    environment, action_cls, _, client_cls = openenv_classes()
    env = environment()
    env.reset(seed=1)
    local = []
    for _ in range(steps):
        t0 = time.perf_counter()
        env.step(action_cls(message=ACTION))
        local.append(time.perf_counter() - t0)

    async def latency() -> list[float]:
        client = client_cls(base_url=url)
        await client.connect()
        await client.reset(seed=1)
        for _ in range(20):
            await client.step(action_cls(message=ACTION))
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            await client.step(action_cls(message=ACTION))
            times.append(time.perf_counter() - t0)
        await client.close()
        return times

    async def held(n: int) -> dict[str, float]:
        lat: list[float] = []

        async def episode(seed: int) -> bool:
            client = client_cls(base_url=url, message_timeout_s=120, connect_timeout_s=60)
            try:
                await client.connect()
                await client.reset(seed=seed)
                for _ in range(session_steps):
                    t0 = time.perf_counter()
                    await client.step(action_cls(message=ACTION))
                    lat.append(time.perf_counter() - t0)
                return True
            except Exception:
                return False
            finally:
                with contextlib.suppress(Exception):
                    await client.close()

        t0 = time.perf_counter()
        ok = await asyncio.gather(*(episode(i) for i in range(n)))
        wall = time.perf_counter() - t0
        return {"ok": sum(ok) / n, "p50": 1000 * percentile(lat, 0.5), "p99": 1000 * percentile(lat, 0.99),
                "steps_per_s": len(lat) / wall, "wall": wall}

    remote = asyncio.run(latency())
    held_results = {str(n): asyncio.run(held(n)) for n in sessions}
    print(json.dumps({"local": local, "remote": remote, "held": held_results}))


def ensure_openenv_venv() -> Path:
    python = OPENENV_VENV / "bin" / "python"
    probe = [str(python), "-c", "import openenv.core.env_server.http_server"]
    if not (python.exists() and subprocess.run(probe, capture_output=True).returncode == 0):
        print(f"creating {OPENENV_VENV} with {OPENENV_PIN} (once; it pulls gradio and friends)...", flush=True)
        subprocess.run(["python3", "-m", "venv", str(OPENENV_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", OPENENV_PIN], check=True)
    (OPENENV_VENV / ".gitignore").write_text("*\n")  # keeps the venv out of git status
    return python


# ----- the report --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and sessions (a smoke run)")
    parser.add_argument("--skip-openenv", action="store_true", help="do not build or run the openenv comparison")
    parser.add_argument("--serve-ours", choices=["thread", "inline"], help=argparse.SUPPRESS)
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-openenv", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--openenv-client", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ours:
        return serve_ours(args.serve_ours == "inline")
    if args.serve_echo:
        return serve_echo()
    if args.serve_openenv:
        return serve_openenv()
    if args.openenv_client:
        opts = json.loads(args.openenv_client)
        return openenv_client(opts["url"], opts["steps"], opts["sessions"], opts["session_steps"])

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 110))
    steps = 300 if args.quick else 2000
    ns = [64, 256] if args.quick else [64, 256, 512, 1024]
    session_steps = 5 if args.quick else 10
    me = str(Path(__file__).resolve())

    local = local_latency(steps)
    lat: dict[str, tuple[list[float], list[float]]] = {}
    bare: dict[str, list[float]] = {}
    held: dict[tuple[str, int], dict[str, float]] = {}
    step_message = json.dumps({"op": "step", "action": ACTION})
    for mode in ("thread", "inline"):
        proc, url = start([sys.executable, me, "--serve-ours", mode])
        try:
            for transport in ("ws", "http"):
                lat[f"{transport}/{mode}"] = remote_latency(url, steps, transport)
            bare[mode] = bare_ws_latency(url, steps, [json.dumps({"op": "reset", "seed": 1}), step_message])
            for n in ns if mode == "thread" else []:
                held[("ws", n)] = sessions_held(url, n, session_steps, "ws")
            for n in ns[:2] if mode == "thread" else []:
                held[("http", n)] = sessions_held(url, n, session_steps, "http")
        finally:
            proc.terminate()
            proc.wait(10)
    eproc, eurl = start([sys.executable, me, "--serve-echo"])
    try:
        echo = bare_ws_latency(eurl, steps, [step_message])
    finally:
        eproc.terminate()
        eproc.wait(10)

    loc = stats_ms(local)
    t = Table(title=f"(a) step latency, local env vs agentenv env server ({steps} steps, 127.0.0.1)")
    for col in ("path", "median ms", "p99 ms", "ratio vs local (median)"):
        t.add_column(col, justify="right")
    t.add_row("local Env.step (baseline)", f"{loc['median']:.4f}", f"{loc['p99']:.4f}", "1x")
    for key, label in (("ws/thread", "WebSocket"), ("ws/inline", "WebSocket, inline env"),
                       ("http/thread", "HTTP"), ("http/inline", "HTTP, inline env")):
        for name, xs in ((f"RemoteEnv.step ({label})", lat[key][0]), (f"RemoteEnv.step_async ({label})", lat[key][1])):
            st = stats_ms(xs)
            t.add_row(name, f"{st['median']:.3f}", f"{st['p99']:.3f}", f"{st['median'] / loc['median']:.0f}x")
    console.print(t)

    their: dict[str, Any] | None = None
    if not args.skip_openenv:
        python = ensure_openenv_venv()
        oproc, ourl = start([str(python), me, "--serve-openenv"], env={**os.environ, "ENABLE_WEB_INTERFACE": "false"},
                            quiet=True)
        try:
            opts = {"url": ourl, "steps": steps, "sessions": ns[:3], "session_steps": session_steps}
            out = subprocess.run([str(python), me, "--openenv-client", json.dumps(opts)],
                                 capture_output=True, text=True, cwd=REPO, timeout=1200)
            if out.returncode != 0:
                raise RuntimeError(f"openenv client failed: {out.stderr[-2000:]}")
            their = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            oproc.terminate()
            oproc.wait(10)

    h = Table(title=f"(b) sessions held: N concurrent episodes x {session_steps} steps, one server process, 2 cores")
    for col in ("server", "N", "success", "p50 ms", "p99 ms", "steps/s", "wall s", "target"):
        h.add_column(col, justify="right")
    for (transport, n), r in held.items():
        h.add_row(f"agentenv ({'WebSocket' if transport == 'ws' else 'HTTP'})", str(n), f"{r['ok']:.1%}",
                  f"{r['p50']:.1f}", f"{r['p99']:.1f}", f"{r['steps_per_s']:.0f}", f"{r['wall']:.2f}",
                  ">= 99% at 512" if n == 512 else "")
    if their is not None:
        for n in ns[:3]:
            r = their["held"][str(n)]
            h.add_row("openenv-core 0.3.0 (WebSocket)", str(n), f"{r['ok']:.1%}", f"{r['p50']:.1f}",
                      f"{r['p99']:.1f}", f"{r['steps_per_s']:.0f}", f"{r['wall']:.2f}", "")
    console.print(h)

    if their is not None:
        o = Table(title="(c) per-step overhead on identical env logic (remote median - in-process median)")
        for col in ("server / client", "in-process ms", "remote median ms", "remote p99 ms", "overhead ms",
                    "ours / theirs (target <= 0.33)"):
            o.add_column(col, justify="right")
        tl, tr = stats_ms(their["local"]), stats_ms(their["remote"])
        their_over = tr["median"] - tl["median"]
        for key, label in (("http/thread", "agentenv HTTP / RemoteEnv.step_async"),
                           ("ws/thread", "agentenv WebSocket / RemoteEnv.step_async"),
                           ("ws/inline", "agentenv WebSocket, nonblocking_steps env")):
            st = stats_ms(lat[key][1])
            over = st["median"] - loc["median"]
            o.add_row(label, f"{loc['median']:.4f}", f"{st['median']:.3f}", f"{st['p99']:.3f}", f"{over:.3f}",
                      f"{over / their_over:.2f}")
        o.add_row("openenv-core WebSocket / EnvClient.step", f"{tl['median']:.4f}", f"{tr['median']:.3f}",
                  f"{tr['p99']:.3f}", f"{their_over:.3f}", "1")
        console.print(o)

    b = Table(title="(d) where a WebSocket step's time goes (medians, ms)")
    for col in ("component", "how it is measured", "ms"):
        b.add_column(col, justify="right")
    floor = stats_ms(echo)["median"]
    bare_inline, bare_thread = stats_ms(bare["inline"])["median"], stats_ms(bare["thread"])["median"]
    remote_inline = stats_ms(lat["ws/inline"][1])["median"]
    b.add_row("transport floor", "bare websockets client <-> bare uvicorn ASGI echo", f"{floor:.3f}")
    b.add_row("server handling", "bare client to our server (inline env) - echo - env step",
              f"{bare_inline - floor - loc['median']:.3f}")
    b.add_row("client (RemoteEnv)", "RemoteEnv.step_async - bare client (inline env)",
              f"{remote_inline - bare_inline:.3f}")
    b.add_row("thread hop", "bare client: plain env - inline env", f"{bare_thread - bare_inline:.3f}")
    b.add_row("env step", "in-process Env.step", f"{loc['median']:.4f}")
    console.print(b)


if __name__ == "__main__":
    main()
