"""The viewer's first page on a large store: how long until the episodes table answers.

Generates a store of N small episodes (default 100,000: two turns, a few dozen tokens each, written with
``TrajectoryStore.write`` in batches of 10,000), then times through the real app (FastAPI TestClient):

* cold: a fresh app's first ``/api/stores/ID/episodes?limit=50`` (builds the index from the shards),
* warm: the same request again (the cached index), and a sorted, filtered page,
* baseline: reading every episode with ``TrajectoryStore.episodes()``, what a naive viewer would do.

    python benchmarks/viewer.py [--episodes 100000] [--dir PATH]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from agentenv.store import TrajectoryStore
from agentenv.trajectory import Trajectory, Turn

TASK_TYPES = ("pick", "clean", "heat", "cool", "look", "two")


def episode(i: int) -> Trajectory:
    """A small two-turn episode; token ids vary with ``i`` so the shards compress like real ones."""
    turns = []
    for k in range(2):
        turns.append(Turn(
            index=k, observation=[{"role": "user", "content": f"step {k} of task {i}"}], action="go north",
            prompt_ids=[(i * 17 + k + j * 5) % 49152 for j in range(16)], prompt_offset=0 if k == 0 else 20,
            completion_ids=[(i * 31 + k * 7 + j * 13) % 49152 for j in range(6)],
            completion_mask=[1, 1, 1, 1, 1, int(i % 3 != 0)],
            logprobs=[-((i + j) % 11) / 4 for j in range(6)], entropies=[((i * j) % 7) / 3 for j in range(6)],
            reward=float(k == 1 and i % 4 == 0), terminated=k == 1, info={"won": i % 4 == 0} if k == 1 else {}))
    group = f"t{i // 8:06d}"
    return Trajectory(trajectory_id=f"{group}-s{i % 8:03d}", group_id=group, task_id=group,
                      task_index=i // 8, sample_index=i % 8, seed=i, env_id="agentenv/ALFWorld-v0",
                      policy_id="bench", policy_version=i // 20_000, turns=turns, reward=float(i % 4 == 0),
                      terminated=True, status="failed" if i % 97 == 0 else "ok",
                      failure_cause="env_timeout" if i % 97 == 0 else None,
                      extra={"task_type": TASK_TYPES[i % len(TASK_TYPES)]})


def generate(directory: Path, n: int, batch: int = 10_000) -> float:
    started = time.perf_counter()
    store = TrajectoryStore(directory)
    for start in range(0, n, batch):
        store.write([episode(i) for i in range(start, min(n, start + batch))])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="reuse or keep the store here (default: a temp dir)")
    parser.add_argument("--skip-baseline", action="store_true", help="do not time reading every episode")
    args = parser.parse_args()
    from fastapi.testclient import TestClient

    from agentenv.viewer import create_viewer_app

    temp = None if args.dir else tempfile.mkdtemp(prefix="viewer-bench-")
    directory = args.dir or Path(temp or ".") / "store"
    try:
        if not (directory / "shards").is_dir():
            print(f"generating {args.episodes:,} episodes in {directory}: {generate(directory, args.episodes):.1f} s")
        n = len(TrajectoryStore(directory))
        shard_bytes = sum(p.stat().st_size for p in TrajectoryStore(directory).shard_paths())
        print(f"store: {n:,} episodes, {shard_bytes / 2**20:.1f} MiB of shards")

        started = time.perf_counter()
        client = TestClient(create_viewer_app([directory]))
        (store_id,) = [s["id"] for s in client.get("/api/sources").json()["stores"]]
        body = client.get(f"/api/stores/{store_id}/episodes", params={"limit": 50}).json()
        cold = time.perf_counter() - started
        assert body["total"] == n and len(body["rows"]) == min(50, n), body.get("errors")
        started = time.perf_counter()
        client.get(f"/api/stores/{store_id}/episodes", params={"limit": 50})
        warm = time.perf_counter() - started
        started = time.perf_counter()
        filtered = client.get(f"/api/stores/{store_id}/episodes", params={
            "limit": 50, "sort": "reward", "order": "desc", "success": "true", "task_type": "pick"}).json()
        warm_query = time.perf_counter() - started
        started = time.perf_counter()
        tid = body["rows"][0]["trajectory_id"]
        client.get(f"/api/stores/{store_id}/episodes/{tid}")
        detail = time.perf_counter() - started
        print(f"first page, cold (app start + index build): {cold:.2f} s")
        print(f"first page, warm: {warm * 1000:.0f} ms; sorted+filtered page ({filtered['total']:,} match): "
              f"{warm_query * 1000:.0f} ms; one episode: {detail * 1000:.0f} ms")
        if not args.skip_baseline:
            started = time.perf_counter()
            count = sum(1 for _ in TrajectoryStore(directory).episodes())
            baseline = time.perf_counter() - started
            print(f"baseline, TrajectoryStore.episodes() over {count:,} episodes: {baseline:.2f} s "
                  f"({baseline / cold:.0f}x the cold first page)")
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
