"""BrowserGym's side of benchmarks/web.py; runs in .venv-browsergym (scripts/setup-browsergym.sh).

BrowserGym pins playwright==1.44 and ours needs >= 1.45, so this worker runs in its own virtual environment
and is started by benchmarks/web.py as a subprocess. It takes one JSON request as its only argument and
prints one JSON object (the timings) on its last stdout line; nothing but local files is touched.

Identical pages: BrowserGym's MiniWoB tasks load `$MINIWOB_URL<task>.html`; the request's `miniwob_url` is
the file:// URL of the html/miniwob/ folder of the `miniwob` package installed in .venv, the pages our
MiniWoBEnv opens.

Identical actions: the scripts of agentenv's envs/web/miniwob_scripts.py choose every action, from the
page text of agentenv's envs/web/page.py (both loaded by file path: they import nothing from agentenv, and
agentenv is not installed here). Before each step, untimed, the worker serialises BrowserGym's page with our
SERIALIZE_JS, asks the script for an action such as `click(3)` and translates element 3 to the `bid`
BrowserGym gave the same element, giving `click("17")`; only `env.step` (and, in its own column,
`flatten_axtree_to_str`, which an agent needs to read the page as text) is timed.

Our Chromium: BrowserGym launches a browser per reset with `pw.chromium.launch(...)`, and its chat window
(browsergym.core.chat.Chat) launches a second one with no way to pass arguments. The env's browser gets
`executable_path` through BrowserGym's own `pw_chromium_kwargs`; for the chat's, the worker wraps
`playwright.sync_api.BrowserType.launch` so that a launch without `executable_path` gets ours (the wrapper
also adds a host-resolver rule that resolves no name, so neither browser can reach the network). Nothing
else of BrowserGym is changed.

BrowserGym's fixed delays (browsergym 0.14.3): `BrowserEnv(pre_observation_delay=0.5)`, a `time.sleep` in
every `post_step` before the observation is extracted; and the MiniWoB tasks' `slow_mo = 100` (ms), which
Playwright adds to every input and navigation call (click, fill, goto...). Configurations: "defaults" keeps
both; "delay0" sets `pre_observation_delay=0` (the issue's "fixed observation delay set to 0"); "nosleep"
sets `slow_mo=0` as well (an env keyword that overrides the task's), leaving no fixed sleep at all.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import multiprocessing
import os
import re
import sys
import time
import types
from pathlib import Path
from typing import Any

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "delay0": {"pre_observation_delay": 0.0},
    "nosleep": {"pre_observation_delay": 0.0, "slow_mo": 0},
}
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost"
ACTION = re.compile(r"^(click|fill|select_option)\((\d+)(?:, (.*))?\)$", re.DOTALL)


def load_module(name: str, path: Path) -> types.ModuleType:
    """Load one of agentenv's dependency-free modules by file path (agentenv is not installed here)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def point_at_chromium(executable: str) -> None:
    """Make every Playwright launch without an explicit `executable_path` use ours (BrowserGym's chat), and
    keep every browser off the network: the pages are file://, and a name that resolves to nothing cannot
    be reached (the benchmark talks to local files and 127.0.0.1 only)."""
    import playwright.sync_api

    original = playwright.sync_api.BrowserType.launch
    if getattr(original, "_agentenv_wrapped", False):
        return

    def launch(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("executable_path", executable)
        kwargs["args"] = [*(kwargs.get("args") or []), OFFLINE]
        return original(self, *args, **kwargs)

    launch._agentenv_wrapped = True  # type: ignore[attr-defined]
    playwright.sync_api.BrowserType.launch = launch  # type: ignore[method-assign]


class Runner:
    """One BrowserGym env per task, driven by our scripts through bid-translated actions."""

    def __init__(self, request: dict[str, Any], config: str) -> None:
        os.environ["MINIWOB_URL"] = request["miniwob_url"]
        point_at_chromium(request["chromium"])
        logging.getLogger("browsergym").setLevel(logging.ERROR)  # the slow_mo override warns on every reset
        root = Path(request["repo"]) / "envs" / "web"
        self.page_js = load_module("_agentenv_page", root / "page.py")
        self.scripts = load_module("_agentenv_miniwob_scripts", root / "miniwob_scripts.py")
        import browsergym.miniwob  # noqa: F401  (registers browsergym/miniwob.* ids)
        import gymnasium as gym

        self.gym = gym
        self.kwargs = {"pw_chromium_kwargs": {"executable_path": request["chromium"]}, **CONFIGS[config]}
        self.max_steps = int(request.get("max_steps", 8))
        self.think_s = float(request.get("think_s", 0.0))
        self.envs: dict[str, Any] = {}

    def env(self, task: str) -> Any:
        if task not in self.envs:
            self.envs[task] = self.gym.make(f"browsergym/miniwob.{task}", **self.kwargs)
        return self.envs[task]

    def next_action(self, task: str, goal: str) -> str | None:
        """The script's next action, as a BrowserGym action on the same element (untimed)."""
        page = self.env(task).unwrapped.page
        text = page.evaluate(self.page_js.SERIALIZE_JS, [self.page_js.MAX_OBSERVATION_CHARS, "#area"])
        action = self.scripts.next_action(task, goal, text)
        match = ACTION.match(action or "")
        if not match:
            return None
        name, element, rest = match.groups()
        bid = page.get_attribute(f'[data-agentenv-id="{element}"]', "bid")
        if bid is None:
            return None
        return f"{name}({json.dumps(bid)}{', ' + rest if rest else ''})"

    def episode(self, task: str, seed: int, timings: dict[str, list[float]] | None) -> tuple[int, bool]:
        """Reset and run the script to the end; returns (steps, won). Timings go to `timings` when given."""
        from browsergym.utils.obs import flatten_axtree_to_str

        env = self.env(task)
        self.think(timings)
        start = time.perf_counter()
        obs, _ = env.reset(seed=seed)
        if timings is not None:
            timings["reset"].append(time.perf_counter() - start)
        steps, won = 0, False
        for _ in range(self.max_steps):
            action = self.next_action(task, obs["goal"])
            if action is None:
                break
            self.think(timings)
            start = time.perf_counter()
            obs, reward, terminated, truncated, _ = env.step(action)
            if timings is not None:
                timings["step"].append(time.perf_counter() - start)
                start = time.perf_counter()
                flatten_axtree_to_str(obs["axtree_object"])
                timings["flatten"].append(time.perf_counter() - start)
            steps += 1
            if terminated or truncated:
                won = reward > 0
                break
        return steps, won

    def think(self, timings: dict[str, list[float]] | None) -> None:
        """The same untimed pause before each timed call as on our side (`--think-ms` of web.py)."""
        if timings is not None and self.think_s:
            time.sleep(self.think_s)

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


def summary(samples: list[float]) -> dict[str, float]:
    """The same p50/p95/mean as our side's (benchmarks/web.py is stdlib-only at import)."""
    web = sys.modules.get("_agentenv_bench_web") or load_module("_agentenv_bench_web",
                                                                Path(__file__).with_name("web.py"))
    return dict(web.summary(samples))


def latency(request: dict[str, Any], config: str, warm_up: bool) -> dict[str, Any]:
    runner = Runner(request, config)
    timings: dict[str, list[float]] = {"reset": [], "step": [], "flatten": []}
    won = episodes = 0
    try:
        if warm_up:  # the Playwright driver's start and the first browser launch (disk caches)
            runner.env(request["tasks"][0]).reset(seed=10_000)
        for task in request["tasks"]:
            for index in range(request["episodes"]):
                _, ok = runner.episode(task, request["seed"] + index, timings)
                won += ok
                episodes += 1
    finally:
        runner.close()
    return {**{k: summary(v) for k, v in timings.items()}, "won": won, "episodes": episodes}


def _throughput_worker(request: dict[str, Any], config: str, offset: int, barrier: Any, queue: Any) -> None:
    from browsergym.core import _get_global_playwright

    runner = Runner(request, config)
    steps = won = episodes = 0
    try:
        _get_global_playwright()  # imports and the Playwright driver start before the timed window
        barrier.wait()
        for index in range(request["throughput_episodes"]):
            task = request["tasks"][(offset + index) % len(request["tasks"])]
            done, ok = runner.episode(task, request["seed"] + 1000 * offset + index, None)
            steps += done
            won += ok
            episodes += 1
        queue.put({"steps": steps, "won": won, "episodes": episodes, "end": time.perf_counter()})
    finally:
        runner.close()


def throughput(request: dict[str, Any], config: str, concurrency: int) -> dict[str, Any]:
    """Processes, one env each: BrowserGym's sync Playwright (greenlets, one global instance) is not
    thread-safe, so processes are how BrowserGym runs episodes in parallel."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(concurrency + 1)
    queue = context.Queue()
    workers = [context.Process(target=_throughput_worker, args=(request, config, i, barrier, queue))
               for i in range(concurrency)]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=600)
    start = time.perf_counter()
    results = [queue.get(timeout=1800) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    elapsed = max(r["end"] for r in results) - start
    steps = sum(r["steps"] for r in results)
    episodes = sum(r["episodes"] for r in results)
    return {"concurrency": concurrency, "steps": steps, "episodes": episodes, "won": sum(r["won"] for r in results),
            "seconds": elapsed, "steps_per_s": steps / elapsed, "episodes_per_s": episodes / elapsed}


def main() -> None:
    request = json.loads(sys.argv[1])
    import playwright  # noqa: F401

    result: dict[str, Any] = {"versions": {}, "latency": {}, "throughput": {}}
    from importlib.metadata import version

    result["versions"] = {"browsergym": version("browsergym-core"), "playwright": version("playwright")}
    for index, config in enumerate(request["latency_configs"]):
        result["latency"][config] = latency(request, config, warm_up=index == 0)
    for config in request["throughput_configs"]:
        result["throughput"][config] = [throughput(request, config, n) for n in request["concurrency"]]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
