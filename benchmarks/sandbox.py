"""Sandbox latency, start-up and idle memory per backend, against the container engine's own exec and run.

    python benchmarks/sandbox.py [--backends bwrap,docker,subprocess] [--repeats 50]

Prints a table and the ratios the project targets, measured in the same run:
- exec in a live bwrap sandbox vs `podman exec` (the engine's exec API on a running container): >= 20x;
- bwrap create-to-first-exec vs `podman run` of a one-liner: >= 10x.
The docker rows need an engine (`bash scripts/setup-podman.sh`, `bash scripts/build-sandbox-image.sh`,
`AGENTENV_DOCKER_HOST`); without one they are skipped with the reason.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="bwrap,docker,subprocess")
    parser.add_argument("--repeats", type=int, default=50)
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


if __name__ == "__main__":
    main()
