"""Sandbox latency, start-up and idle memory per backend, and the code and SWE environments built on them,
each against its usual alternative measured in the same run.

    python benchmarks/sandbox.py [--backends bwrap,docker,subprocess] [--repeats 50] [--skip-envs]

Targets (ratios printed at the end):
- exec in a live bwrap sandbox vs `podman exec` (the engine's exec API on a running container): >= 20x;
- bwrap create-to-first-exec vs `podman run` of a one-liner: >= 10x;
- a code cell's round trip in a warm session vs a Jupyter kernel's (`jupyter_client`): >= 3x;
- a code session's start (from the warm pool) vs `start_new_kernel`-style start-up: >= 10x;
- an SWE episode reset vs a fresh container with the repository copied in: >= 10x;
- code env episodes/s with 8 concurrent sessions vs 1 (reported).
The docker rows need an engine (`bash scripts/setup-podman.sh`, `bash scripts/build-sandbox-image.sh`,
`AGENTENV_DOCKER_HOST`); without one they are skipped with the reason. Jupyter needs the `bench` extra.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable

from agentenv.sandboxes import SandboxLimits, SandboxUnavailable, make_sandbox

SNIPPET = "\n".join(
    [
        "import math",
        "def primes(n):",
        "    sieve = [True] * (n + 1)",
        "    sieve[0] = sieve[1] = False",
        "    for i in range(2, int(math.isqrt(n)) + 1):",
        "        if sieve[i]:",
        "            for j in range(i * i, n + 1, i):",
        "                sieve[j] = False",
        "    return [i for i, ok in enumerate(sieve) if ok]",
        "def fib(k):",
        "    a, b = 0, 1",
        "    for _ in range(k):",
        "        a, b = b, a + b",
        "    return a",
        "values = primes(1000)",
        "total = sum(values)",
        "words = ['alpha', 'beta', 'gamma']",
        "joined = '-'.join(sorted(words, key=len))",
        "result = (len(values), total, fib(30), joined)",
        "print(result)",
    ]
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def rss_of_tree(root_pid: int) -> int:
    """Resident memory of a process and all its descendants (bytes)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(name))
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total


def idle_memory(sandbox) -> int:  # type: ignore[no-untyped-def]
    if sandbox.backend == "docker":
        stats = sandbox.container.stats(stream=False)
        return int(stats.get("memory_stats", {}).get("usage", 0))
    return rss_of_tree(sandbox.process.pid)


def bench_backend(backend: str, repeats: int) -> dict[str, float]:
    limits = SandboxLimits(wall_time_s=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_sandbox(backend, limits).close()  # warm caches and the self-check

        def start_and_exec() -> None:
            box = make_sandbox(backend, limits)
            box.exec("true")
            box.close()

        starts = timed(start_and_exec, max(5, repeats // 5))
        box = make_sandbox(backend, limits)
    try:
        trivial = timed(lambda: box.exec("true"), repeats)
        snippet = timed(lambda: box.exec(["python3", "-c", SNIPPET]), max(10, repeats // 2))
        time.sleep(0.5)
        memory = idle_memory(box)
    finally:
        box.close()
    return {"start_p50": statistics.median(starts), "exec_p50": statistics.median(trivial),
            "exec_p95": percentile(trivial, 0.95), "py_p50": statistics.median(snippet),
            "py_p95": percentile(snippet, 0.95), "idle_mib": memory / 2**20}


def bench_engine(repeats: int) -> dict[str, float]:
    """The container engine's own paths: exec in a running container, and run of a one-liner."""
    from agentenv.sandboxes.docker_engine import DEFAULT_IMAGE, LABEL, connect, python_binds

    client = connect()
    image = client.images.get(DEFAULT_IMAGE)
    binds = {p: {"bind": p, "mode": "ro"} for p in [*image.labels["agentenv.host_binds"].split(), *python_binds()]}
    common = dict(network_mode="none", volumes=binds, labels={LABEL: "bench"}, user="1000:1000")
    container = client.containers.run(image.id, ["/usr/bin/sleep", "infinity"], detach=True, **common)
    try:
        exec_true = timed(lambda: container.exec_run(["true"]), repeats)
        exec_py = timed(lambda: container.exec_run(["python3", "-c", SNIPPET]), max(10, repeats // 2))
    finally:
        container.remove(force=True)
    runs = timed(lambda: client.containers.run(image.id, ["true"], remove=True, **common), 5)
    return {"exec_p50": statistics.median(exec_true), "exec_p95": percentile(exec_true, 0.95),
            "py_p50": statistics.median(exec_py), "py_p95": percentile(exec_py, 0.95),
            "start_p50": statistics.median(runs)}


def bench_code_session(repeats: int) -> dict[str, float]:
    """Our code session (kernel in a bwrap sandbox) against a Jupyter kernel: start and `1+1` round trip."""
    import json

    from agentenv.envs.code.env import CodeInterpreterEnv

    env = CodeInterpreterEnv(pool_size=1)
    cold = timed(lambda: (lambda box: (env._start_session(box), box.close()))(env._new_sandbox()), 5)
    env.reset(seed=0)
    assert env.pool is not None
    env.pool.wait_ready(60)

    warm = []
    for _ in range(5):
        env.pool.wait_ready(60)
        start = time.perf_counter()
        box = env.pool.acquire()
        warm.append(time.perf_counter() - start)
        env.pool.release(box)
    assert env.sandbox is not None
    box = env.sandbox
    cells = timed(lambda: json.loads(box.request("python", json.dumps({"code": "1+1"})).data or "{}"), repeats)
    env.close()
    return {"cold_start": statistics.median(cold), "warm_start": statistics.median(warm),
            "cell_p50": statistics.median(cells), "cell_p95": percentile(cells, 0.95)}


def bench_jupyter(repeats: int) -> dict[str, float]:
    from jupyter_client import KernelManager

    def start() -> tuple:
        manager = KernelManager(transport="ipc")
        manager.start_kernel()
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        return manager, client

    def stop(pair: tuple) -> None:
        pair[1].stop_channels()
        pair[0].shutdown_kernel(now=True)

    starts = []
    for _ in range(3):
        begin = time.perf_counter()
        pair = start()
        starts.append(time.perf_counter() - begin)
        stop(pair)
    manager, client = start()

    def execute() -> None:
        msg_id = client.execute("1+1")
        replied = idle = False
        while not (replied and idle):
            if not replied:
                replied = client.get_shell_msg(timeout=10)["parent_header"].get("msg_id") == msg_id
            msg = client.get_iopub_msg(timeout=10)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status":
                idle = msg["content"]["execution_state"] == "idle"

    execute()
    cells = timed(execute, repeats)
    stop((manager, client))
    return {"start": statistics.median(starts), "cell_p50": statistics.median(cells),
            "cell_p95": percentile(cells, 0.95)}


def bench_code_env_concurrency(episodes: int) -> dict[str, float]:
    """Expert episodes per second with 1 session vs 8 concurrent sessions (threads, own env each)."""
    from concurrent.futures import ThreadPoolExecutor

    from agentenv.envs.code.env import CodeInterpreterEnv
    from agentenv.envs.code.solvers import FAMILIES

    def worker(count: int, offset: int) -> None:
        env = CodeInterpreterEnv(families=FAMILIES, pool_size=1)
        try:
            for seed in range(offset, offset + count):
                env.reset(seed=seed)
                while True:
                    action = env.expert_action()
                    if action is None:
                        break
                    *_, terminated, truncated, _ = env.step(action)
                    if terminated or truncated:
                        break
        finally:
            env.close()

    rates = {}
    for concurrency in (1, 8):
        per_worker = max(1, episodes // concurrency)
        begin = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(worker, [per_worker] * concurrency, range(0, concurrency * 1000, 1000)))
        rates[concurrency] = per_worker * concurrency / (time.perf_counter() - begin)
    return {"eps_1": rates[1], "eps_8": rates[8]}


def bench_swe_reset(repeats: int) -> dict[str, float]:
    """SweEnv.reset (warm pool + checkout) vs a fresh container with the same repository copied in."""
    from agentenv.envs.swe.env import SweEnv
    from agentenv.envs.swe.tasks import base_archive, bundled_tasks

    env = SweEnv(pool_size=1)
    task = bundled_tasks()[0]
    env.reset(options={"instance_id": task.instance_id})
    resets = []
    for _ in range(repeats):
        assert env.pools[None].wait_ready(60)
        begin = time.perf_counter()
        env.reset(options={"instance_id": task.instance_id})
        resets.append(time.perf_counter() - begin)
    env.close()
    result = {"reset": statistics.median(resets)}
    try:
        from agentenv.sandboxes.docker_engine import DEFAULT_IMAGE, LABEL, connect, python_binds
    except ImportError:
        return result
    try:
        client = connect()
    except SandboxUnavailable as exc:
        print(f"skip the container reset baseline: {exc}", file=sys.stderr)
        return result
    image = client.images.get(DEFAULT_IMAGE)
    binds = {p: {"bind": p, "mode": "ro"} for p in [*image.labels["agentenv.host_binds"].split(), *python_binds()]}
    archive = base_archive(task.instance_id)
    git = "git -c user.name=a -c user.email=a@b"

    def fresh_container() -> None:
        container = client.containers.run(image.id, ["/usr/bin/sleep", "infinity"], detach=True,
                                          network_mode="none", volumes=binds, labels={LABEL: "bench"},
                                          user="1000:1000", tmpfs={"/workspace": "size=256m"})
        try:
            container.exec_run(["mkdir", "-p", "/workspace/repo"])
            container.put_archive("/workspace/repo", archive)
            container.exec_run(["sh", "-c", f"cd /workspace/repo && {git} init -q && {git} add -A && "
                                            f"{git} commit -qm base"])
        finally:
            container.remove(force=True)

    result["container"] = statistics.median(timed(fresh_container, max(3, repeats // 4)))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="bwrap,docker,subprocess")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--skip-envs", action="store_true", help="only the sandbox backends")
    args = parser.parse_args()
    rows: dict[str, dict[str, float]] = {}
    for backend in args.backends.split(","):
        try:
            rows[backend] = bench_backend(backend, args.repeats)
        except SandboxUnavailable as exc:
            print(f"skip {backend}: {exc}", file=sys.stderr)
    engine = None
    try:
        engine = bench_engine(args.repeats)
        rows["podman exec/run (baseline)"] = engine
    except SandboxUnavailable as exc:
        print(f"skip the engine baseline: {exc}", file=sys.stderr)

    ms = 1000.0
    header = ["start p50", "exec p50", "exec p95", "py20 p50", "py20 p95", "idle MiB"]
    print(f"{'backend':28} " + " ".join(f"{h:>9}" for h in header))
    for name, row in rows.items():
        idle = f"{row['idle_mib']:9.1f}" if "idle_mib" in row else f"{'':>9}"
        print(f"{name:28} {row['start_p50'] * ms:8.1f}ms {row['exec_p50'] * ms:7.2f}ms {row['exec_p95'] * ms:7.2f}ms "
              f"{row['py_p50'] * ms:7.1f}ms {row['py_p95'] * ms:7.1f}ms {idle}")
    if engine and "bwrap" in rows:
        bwrap = rows["bwrap"]
        print(f"\nexec: podman exec / bwrap exec = {engine['exec_p50'] / bwrap['exec_p50']:.1f}x (target >= 20x)")
        print(f"start: podman run / bwrap create-to-first-exec = {engine['start_p50'] / bwrap['start_p50']:.1f}x "
              "(target >= 10x)")
    if args.skip_envs:
        return
    code = bench_code_session(args.repeats)
    print(f"\ncode session: cold start {code['cold_start'] * ms:.0f} ms, "
          f"from the warm pool {code['warm_start'] * ms:.2f} ms, "
          f"cell 1+1 p50 {code['cell_p50'] * ms:.2f} ms (p95 {code['cell_p95'] * ms:.2f})")
    try:
        jupyter = bench_jupyter(args.repeats)
    except ImportError as exc:
        print(f"skip the Jupyter baseline ({exc}): pip install -e '.[bench]'", file=sys.stderr)
    else:
        print(f"jupyter kernel: start {jupyter['start'] * ms:.0f} ms, cell 1+1 p50 {jupyter['cell_p50'] * ms:.2f} ms "
              f"(p95 {jupyter['cell_p95'] * ms:.2f})")
        print(f"cell: jupyter / ours = {jupyter['cell_p50'] / code['cell_p50']:.1f}x (target >= 3x); "
              f"session start: jupyter / ours (warm pool) = {jupyter['start'] / code['warm_start']:.0f}x "
              "(target >= 10x), "
              f"ours cold = {jupyter['start'] / code['cold_start']:.1f}x")
    concurrency = bench_code_env_concurrency(48)
    print(f"code env expert episodes/s: 1 session {concurrency['eps_1']:.1f}, 8 concurrent {concurrency['eps_8']:.1f} "
          f"({concurrency['eps_8'] / concurrency['eps_1']:.2f}x on {os.cpu_count()} cores)")
    swe = bench_swe_reset(max(8, args.repeats // 4))
    line = f"swe reset (warm pool + checkout) p50 {swe['reset'] * ms:.1f} ms"
    if "container" in swe:
        line += (f"; fresh container + repo copied in {swe['container'] * ms:.0f} ms = "
                 f"{swe['container'] / swe['reset']:.1f}x (target >= 10x)")
    print(line)


if __name__ == "__main__":
    main()
