"""A collection killed with SIGKILL keeps every committed episode; re-running finishes it without duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from agentenv.ledger import check_ledger
from agentenv.store import TrajectoryStore

SCRIPT = """
import sys
import agentenv
from agentenv.cli import main
agentenv.register("agentenv/KillCountdown-v0", "agentenv.testing:CountdownEnv", family="test")
main(sys.argv[1:])
"""


def collect_cmd(out, n):
    return [sys.executable, "-c", SCRIPT, "collect", "agentenv/KillCountdown-v0", "--policy", "random",
            "-n", str(n), "-g", "2", "-k", "4", "--out", str(out), "-e", "step_seconds=0.03", "--progress", "log"]


@pytest.mark.integration
def test_sigkill_mid_run_then_resume_keeps_every_finished_episode_exactly_once(tmp_path):
    out, n = tmp_path / "store", 30
    proc = subprocess.Popen(collect_cmd(out, n), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    committed: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        if (out / "shards").is_dir():
            committed = {t.trajectory_id: [x.action for x in t.turns]
                         for t in TrajectoryStore(out).episodes(errors="skip")}
            if len(committed) >= 10:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 10 <= len(committed) < 2 * n, "the kill did not land mid-run"
    before = {t.trajectory_id: [x.action for x in t.turns] for t in TrajectoryStore(out).episodes(errors="skip")}
    assert committed.items() <= before.items()

    done = subprocess.run(collect_cmd(out, n), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    after = list(TrajectoryStore(out).episodes())
    counts = Counter(t.trajectory_id for t in after)
    assert len(counts) == 2 * n and max(counts.values()) == 1
    by_id = {t.trajectory_id: [x.action for x in t.turns] for t in after}
    assert all(by_id[k] == v for k, v in before.items())
    assert all(t.status == "ok" for t in after)

    again = subprocess.run(collect_cmd(out, n), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and len(list(TrajectoryStore(out).episodes())) == 2 * n
    report = check_ledger(out, expected_slots=[f"t{t:06d}-s{s:03d}" for t in range(n) for s in range(2)])
    assert report.ok, report  # L1-L3 across the kill: every intent closed, every row logged with its hash
