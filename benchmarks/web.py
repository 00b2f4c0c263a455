"""MiniWoB++ on our browser envs against BrowserGym on the same pages, the same Chromium and the same actions.

    python benchmarks/web.py [--quick] [--tasks click-test,enter-text] [--episodes 10] [--think-ms 0] [--json OUT]

Measured for ours (`agentenv.envs.web.miniwob.MiniWoBEnv`) and for BrowserGym (`browsergym/miniwob.<task>`,
run by benchmarks/_browsergym_worker.py in .venv-browsergym, since BrowserGym pins playwright==1.44; create
it with `bash scripts/setup-browsergym.sh`):
- reset latency p50/p95 (`env.reset(seed=...)`);
- step latency p50/p95, every step of episodes that the scripts of envs/web/miniwob_scripts.py solve
  (BrowserGym gets the same script's action on the same element, by its `bid`). Ours with text observations
  (the page as text), and with pixel observations (text + a PNG screenshot: `MiniWoBEnv(screenshot=True)`).
  BrowserGym's default
  observation is an AXTree, a DOM snapshot and a screenshot every step, at its defaults
  (`pre_observation_delay=0.5` s and the MiniWoB tasks' Playwright `slow_mo=100` ms), with the observation
  delay at 0 ("delay0"), and with both at 0 ("nosleep");
- throughput (steps/s of full scripted episodes, resets included) with 1, 4 and 8 concurrent episodes:
  ours with threads on one shared browser (one env per thread), BrowserGym with processes (its sync
  Playwright is not thread-safe; every episode launches its own browsers).

Latency is taken back to back by default. Our env prepares the next episode's context in the background
(where envs/web/browser.py has warm sessions), and back to back that work competes with the first steps;
`--think-ms 1000` leaves an untimed pause before each timed reset and step, on both sides, as an LLM
agent's thinking would.

Targets (ratios printed at the end): steps >= 5x faster than BrowserGym at its defaults, >= 1.5x with its
observation delay at 0; resets >= 10x faster. Pages are the file:// pages of the `miniwob` package; nothing
but local files is loaded. The machine's other load shows in the figures: compare ratios taken in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BROWSERGYM_PYTHON = ROOT / ".venv-browsergym" / "bin" / "python"
WORKER = Path(__file__).resolve().parent / "_browsergym_worker.py"
DEFAULT_TASKS = ["click-test", "click-button", "enter-text", "focus-text", "click-checkboxes"]
QUICK_TASKS = ["click-test", "enter-text", "click-checkboxes"]
TARGETS = {"step_defaults": 5.0, "step_delay0": 1.5, "reset": 10.0}
MAX_STEPS = 8


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    return {"n": len(samples), "p50": statistics.median(samples), "p95": percentile(samples, 0.95),
            "mean": statistics.fmean(samples)}


def text_of(obs: Any) -> str:
    """The last message's text (the page), whether its content is a string or text and image parts."""
    content = obs["messages"][-1]["content"] if isinstance(obs, dict) else obs
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")


def utterance_of(info: dict[str, Any], text: str) -> str:
    found = re.search(r"^Task: (.*)$", text, re.MULTILINE)
    return str(info.get("utterance") or (found.group(1) if found else ""))


class Ours:
    """Our MiniWoBEnv, one env per task, driven by the scripts; `pixels` adds a screenshot to each observation."""

    def __init__(self, pixels: bool, think_s: float = 0.0) -> None:
        from agentenv.envs.web.miniwob import MiniWoBEnv
        from agentenv.envs.web.miniwob_scripts import next_action

        self.next_action = next_action
        self.pixels = pixels
        self.think_s = think_s
        self.factory: Callable[[str], Any] = lambda task: MiniWoBEnv(task, max_turns=MAX_STEPS, screenshot=pixels)
        self.envs: dict[str, Any] = {}

    def env(self, task: str) -> Any:
        if task not in self.envs:
            self.envs[task] = self.factory(task)
        return self.envs[task]

    def episode(self, task: str, seed: int, timings: dict[str, list[float]] | None) -> tuple[int, bool]:
        env = self.env(task)
        self.think(timings)
        start = time.perf_counter()
        obs, info = env.reset(seed=seed)
        if timings is not None:
            timings["reset"].append(time.perf_counter() - start)
        text = text_of(obs)
        utterance = utterance_of(info, text)
        steps, won = 0, False
        for _ in range(MAX_STEPS):
            action = self.next_action(task, utterance, text)
            if action is None:
                break
            self.think(timings)
            start = time.perf_counter()
            obs, reward, terminated, truncated, _ = env.step(action)
            if timings is not None:
                timings["step"].append(time.perf_counter() - start)
            text = text_of(obs)
            steps += 1
            if terminated or truncated:
                won = terminated and reward > 0
                break
        return steps, won

    def think(self, timings: dict[str, list[float]] | None) -> None:
        """An agent's pause before a timed call (`--think-ms`): background work of the env may finish."""
        if timings is not None and self.think_s:
            time.sleep(self.think_s)

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


def ours_latency(tasks: list[str], episodes: int, seed: int, pixels: bool, think_s: float) -> dict[str, Any]:
    runner = Ours(pixels, think_s)
    timings: dict[str, list[float]] = {"reset": [], "step": []}
    won = count = 0
    try:
        for task in tasks:  # warm-up: the browser's start, each task's first page load
            runner.episode(task, 10_000, None)
        for task in tasks:
            for index in range(episodes):
                won += runner.episode(task, seed + index, timings)[1]
                count += 1
    finally:
        runner.close()
    return {**{k: summary(v) for k, v in timings.items()}, "won": won, "episodes": count}


def ours_throughput_threads(tasks: list[str], per_worker: int, seed: int, concurrency: int) -> dict[str, Any]:
    """`concurrency` threads, each with its own envs, all on the process's shared browser."""
    barrier = threading.Barrier(concurrency + 1)
    results: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        runner = Ours(pixels=False)
        try:
            runner.episode(tasks[offset % len(tasks)], 20_000 + offset, None)
            barrier.wait()
            steps = won = 0
            for index in range(per_worker):
                done, ok = runner.episode(tasks[(offset + index) % len(tasks)], seed + 1000 * offset + index, None)
                steps += done
                won += ok
            results.append((steps, won, per_worker))
        except BaseException as exc:  # reported below, once the barrier is released
            errors.append(exc)
            barrier.abort()
        finally:
            runner.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return rates("threads", concurrency, results, elapsed)


def ours_throughput_async(tasks: list[str], per_worker: int, seed: int, concurrency: int) -> dict[str, Any]:
    """`concurrency` coroutines on one event loop (`reset_async`/`step_async`), for envs with native ones."""
    from agentenv.envs.web.miniwob import MiniWoBEnv
    from agentenv.envs.web.miniwob_scripts import next_action

    async def worker(offset: int, envs: dict[str, Any], timed: bool) -> tuple[int, int, int]:
        steps = won = 0
        count = per_worker if timed else 1
        for index in range(count):
            task = tasks[(offset + index) % len(tasks)]
            if task not in envs:
                envs[task] = MiniWoBEnv(task, max_turns=MAX_STEPS)
            env = envs[task]
            obs, info = await env.reset_async(seed=(seed + 1000 * offset + index) if timed else 20_000 + offset)
            text = text_of(obs)
            utterance = utterance_of(info, text)
            for _ in range(MAX_STEPS):
                action = next_action(task, utterance, text)
                if action is None:
                    break
                obs, reward, terminated, truncated, _ = await env.step_async(action)
                text = text_of(obs)
                steps += 1
                if terminated or truncated:
                    won += terminated and reward > 0
                    break
        return steps, won, count

    async def run() -> tuple[list[tuple[int, int, int]], float]:
        envs: list[dict[str, Any]] = [{} for _ in range(concurrency)]
        try:
            await asyncio.gather(*(worker(i, envs[i], False) for i in range(concurrency)))
            start = time.perf_counter()
            results = await asyncio.gather(*(worker(i, envs[i], True) for i in range(concurrency)))
            return list(results), time.perf_counter() - start
        finally:
            for group in envs:
                for env in group.values():
                    await env.close_async()

    results, elapsed = asyncio.run(run())
    return rates("asyncio", concurrency, results, elapsed)


def rates(mode: str, concurrency: int, results: list[tuple[int, int, int]], elapsed: float) -> dict[str, Any]:
    steps = sum(r[0] for r in results)
    episodes = sum(r[2] for r in results)
    return {"mode": mode, "concurrency": concurrency, "steps": steps, "episodes": episodes,
            "won": sum(r[1] for r in results), "seconds": elapsed, "steps_per_s": steps / elapsed,
            "episodes_per_s": episodes / elapsed}


def native_async() -> bool:
    """True when MiniWoBEnv overrides the base class's thread-hopping `step_async` with its own coroutine."""
    from agentenv.env import Env
    from agentenv.envs.web.miniwob import MiniWoBEnv

    return MiniWoBEnv.step_async is not Env.step_async


def ours_throughput(tasks: list[str], per_worker: int, seed: int, concurrency: int) -> dict[str, Any]:
    """The better of threads and (where the env has native coroutines) asyncio; both are reported."""
    runs = [ours_throughput_threads(tasks, per_worker, seed, concurrency)]
    if native_async():
        runs.append(ours_throughput_async(tasks, per_worker, seed, concurrency))
    best = max(runs, key=lambda r: r["steps_per_s"])
    return {**best, "alternatives": [r for r in runs if r is not best]}


def miniwob_url() -> str:
    """file:// URL of the `miniwob` package's html/miniwob/ folder (found, not imported: it pulls Selenium)."""
    spec = importlib.util.find_spec("miniwob")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the `miniwob` package is missing: pip install -e '.[web]'")
    return (Path(next(iter(spec.submodule_search_locations))) / "html" / "miniwob").as_uri() + "/"


def run_browsergym(request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """BrowserGym's figures from the worker in .venv-browsergym; None (with the reason) when it cannot run."""
    if not BROWSERGYM_PYTHON.exists():
        print(f"skip BrowserGym: {BROWSERGYM_PYTHON} is missing: bash scripts/setup-browsergym.sh", file=sys.stderr)
        return None
    env = {**os.environ, "MINIWOB_URL": request["miniwob_url"], "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run([str(BROWSERGYM_PYTHON), str(WORKER), json.dumps(request)], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        print(f"skip BrowserGym: the worker took more than {timeout:.0f} s", file=sys.stderr)
        return None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        print(f"skip BrowserGym: the worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def fmt_ms(row: dict[str, float], key: str) -> str:
    return f"{row[key] * 1000:8.1f}" if row.get("n") else f"{'-':>8}"


def ratio(theirs: dict[str, Any] | None, ours: dict[str, Any], key: str = "p50") -> float | None:
    if not theirs or not theirs.get("n") or not ours.get("n"):
        return None
    return float(theirs[key]) / float(ours[key])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 tasks, few episodes, fewer configs")
    parser.add_argument("--tasks", help="comma-separated MiniWoB++ tasks with scripts "
                                        f"(default {','.join(DEFAULT_TASKS)}; quick {','.join(QUICK_TASKS)})")
    parser.add_argument("--episodes", type=int, help="latency episodes per task and side (default 10; quick 1)")
    parser.add_argument("--throughput-episodes", type=int, help="episodes per concurrent worker (default 6; quick 1)")
    parser.add_argument("--concurrency", default=None, help="ours: concurrent episodes (default 1,4,8)")
    parser.add_argument("--browsergym-concurrency", default=None,
                        help="BrowserGym: concurrent processes (default 1,4; quick 1)")
    parser.add_argument("--think-ms", type=float, default=0.0,
                        help="latency runs: an untimed pause before each reset and step, on both sides, as an "
                             "agent's thinking would leave (default 0: back to back, the harder case for "
                             "work an env does in the background)")
    parser.add_argument("--no-browsergym", action="store_true", help="measure ours only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    args = parser.parse_args()

    from agentenv.envs.web.browser import find_chromium
    from agentenv.envs.web.miniwob_scripts import SCRIPTS

    tasks = args.tasks.split(",") if args.tasks else (QUICK_TASKS if args.quick else DEFAULT_TASKS)
    unknown = [t for t in tasks if t not in SCRIPTS]
    if unknown:
        raise SystemExit(f"no script for {', '.join(unknown)}; scripted tasks: {', '.join(sorted(SCRIPTS))}")
    episodes = args.episodes or (1 if args.quick else 10)
    per_worker = args.throughput_episodes or (1 if args.quick else 6)
    concurrency = [int(c) for c in (args.concurrency or "1,4,8").split(",")]
    bg_concurrency = [int(c) for c in (args.browsergym_concurrency or ("1" if args.quick else "1,4")).split(",")]
    chromium = find_chromium()
    warnings.simplefilter("ignore")

    began = time.perf_counter()
    print(f"tasks: {', '.join(tasks)}; {episodes} episodes per task; think {args.think_ms:g} ms; Chromium {chromium}; "
          f"{os.cpu_count()} cores", file=sys.stderr)
    think_s = args.think_ms / 1000
    ours: dict[str, Any] = {"text": ours_latency(tasks, episodes, args.seed, False, think_s),
                            "pixels": ours_latency(tasks, episodes, args.seed, True, think_s)}
    ours["throughput"] = [ours_throughput(tasks, per_worker, args.seed, n) for n in concurrency]

    browsergym = None
    if not args.no_browsergym:
        request = {"repo": str(ROOT), "chromium": chromium, "miniwob_url": miniwob_url(), "tasks": tasks,
                   "episodes": episodes, "seed": args.seed, "max_steps": MAX_STEPS, "think_s": think_s,
                   "latency_configs": ["defaults", "delay0", "nosleep"], "throughput_configs": ["defaults"],
                   "concurrency": bg_concurrency, "throughput_episodes": per_worker}
        browsergym = run_browsergym(request, timeout=3600)

    report(ours, browsergym)
    if args.json:
        Path(args.json).write_text(json.dumps({"tasks": tasks, "episodes": episodes, "think_ms": args.think_ms,
                                               "chromium": chromium,
                                               "cores": os.cpu_count(), "ours": ours, "browsergym": browsergym},
                                              indent=2))
    print(f"\n({time.perf_counter() - began:.0f} s)", file=sys.stderr)


def report(ours: dict[str, Any], browsergym: dict[str, Any] | None) -> None:
    rows: list[tuple[str, dict[str, Any]]] = [
        ("ours, text", ours["text"]),
        ("ours, text + screenshot (PNG)", ours["pixels"]),
    ]
    labels = {"defaults": "BrowserGym, defaults", "delay0": "BrowserGym, observation delay 0",
              "nosleep": "BrowserGym, delay 0 + slow_mo 0"}
    if browsergym:
        rows += [(labels[name], row) for name, row in browsergym["latency"].items()]
    print(f"\n{'latency (ms)':44} {'reset p50':>9} {'reset p95':>9} {'step p50':>9} {'step p95':>9} {'steps':>6} "
          f"{'won':>7}")
    for name, row in rows:
        print(f"{name:44} {fmt_ms(row['reset'], 'p50')}  {fmt_ms(row['reset'], 'p95')}  {fmt_ms(row['step'], 'p50')}  "
              f"{fmt_ms(row['step'], 'p95')}  {row['step'].get('n', 0):6} {row['won']:3}/{row['episodes']:<3}")
    if browsergym:
        flatten = browsergym["latency"]["defaults"].get("flatten", {})
        if flatten.get("n"):
            print(f"(BrowserGym's AXTree -> text, flatten_axtree_to_str, outside its step: p50 "
                  f"{flatten['p50'] * 1000:.2f} ms; BrowserGym {browsergym['versions']['browsergym']}, "
                  f"Playwright {browsergym['versions']['playwright']})")

    print(f"\n{'throughput (full scripted episodes)':44} {'conc.':>5} {'steps/s':>8} {'episodes/s':>10} "
          f"{'won':>7}  how")
    throughput_rows = [("ours", r) for r in ours["throughput"]]
    if browsergym:
        throughput_rows += [("BrowserGym, defaults", r) for r in browsergym["throughput"].get("defaults", [])]
    for name, row in throughput_rows:
        how = row.get("mode", "processes")
        for alt in row.get("alternatives", []):
            how += f" (vs {alt['mode']} {alt['steps_per_s']:.1f} steps/s)"
        print(f"{name:44} {row['concurrency']:5} {row['steps_per_s']:8.2f} {row['episodes_per_s']:10.2f} "
              f"{row['won']:3}/{row['episodes']:<3}  {how}")

    if not browsergym:
        return
    bg = browsergym["latency"]
    print("\nratios, BrowserGym / ours (p50; higher is better for ours):")
    checks = [
        ("step, BrowserGym defaults / ours text", ratio(bg["defaults"]["step"], ours["text"]["step"]),
         TARGETS["step_defaults"]),
        ("step, BrowserGym defaults / ours text+screenshot", ratio(bg["defaults"]["step"], ours["pixels"]["step"]),
         TARGETS["step_defaults"]),
        ("step, BrowserGym delay 0 / ours text", ratio(bg["delay0"]["step"], ours["text"]["step"]),
         TARGETS["step_delay0"]),
        ("step, BrowserGym delay 0 / ours text+screenshot", ratio(bg["delay0"]["step"], ours["pixels"]["step"]),
         TARGETS["step_delay0"]),
        ("step, BrowserGym delay 0 + slow_mo 0 / ours text", ratio(bg["nosleep"]["step"], ours["text"]["step"]),
         TARGETS["step_delay0"]),
        ("step, BrowserGym delay 0 + slow_mo 0 / ours text+screenshot",
         ratio(bg["nosleep"]["step"], ours["pixels"]["step"]), TARGETS["step_delay0"]),
        ("reset, BrowserGym defaults / ours", ratio(bg["defaults"]["reset"], ours["text"]["reset"]), TARGETS["reset"]),
        ("reset, BrowserGym delay 0 + slow_mo 0 / ours", ratio(bg["nosleep"]["reset"], ours["text"]["reset"]),
         TARGETS["reset"]),
    ]
    for name, value, target in checks:
        if value is None:
            print(f"  {name:62} {'-':>7}")
            continue
        verdict = "pass" if value >= target else "FAIL"
        print(f"  {name:62} {value:6.1f}x  (target >= {target:g}x: {verdict})")
    bg_rates = {r["concurrency"]: r["steps_per_s"] for r in browsergym["throughput"].get("defaults", [])}
    for row in ours["throughput"]:
        if row["concurrency"] in bg_rates:
            print(f"  {'throughput, ours / BrowserGym defaults, ' + str(row['concurrency']) + ' concurrent':62} "
                  f"{row['steps_per_s'] / bg_rates[row['concurrency']]:6.1f}x")


if __name__ == "__main__":
    main()
