"""The daemon thread pool: an executor like ThreadPoolExecutor whose hung calls never hold the process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from agentenv.threads import DaemonThreadPool


def test_results_and_exceptions_come_back_through_the_futures():
    pool = DaemonThreadPool(max_workers=2)
    assert pool.submit(lambda x: x * 2, 21).result(timeout=5) == 42
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(timeout=5)
    pool.shutdown()


def test_runs_up_to_max_workers_at_once_and_reuses_idle_threads():
    pool = DaemonThreadPool(max_workers=3)
    running, peak, lock = [0], [0], threading.Lock()

    def task():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return threading.current_thread().name

    names = {f.result(timeout=5) for f in [pool.submit(task) for _ in range(12)]}
    assert peak[0] == 3 and len(names) == 3
    for _ in range(5):  # sequential work after the burst starts no new thread
        pool.submit(task).result(timeout=5)
    assert len(pool._workers) == 3
    pool.shutdown()


def test_shutdown_with_cancel_futures_cancels_queued_work():
    pool = DaemonThreadPool(max_workers=1)
    gate = threading.Event()
    first = pool.submit(gate.wait, 5)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert first.result(timeout=5) is True and queued.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)


SCRIPT = """
import agentenv
from agentenv.cli import main
agentenv.register("agentenv/HangCountdown-v0", "agentenv.testing:CountdownEnv", family="test")
main(["collect", "agentenv/HangCountdown-v0", "--policy", "random", "-n", "2", "-k", "2", "--out", OUT,
      "-e", "hang_at=1", "-e", "hang_seconds=120", "--env-timeout", "0.5", "--progress", "off"])
"""


@pytest.mark.integration
def test_a_hung_env_call_does_not_keep_the_collect_process_alive(tmp_path):
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", SCRIPT.replace("OUT", repr(str(tmp_path / "s")))],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "env_timeout" in done.stdout or "timeout" in done.stdout
    assert time.monotonic() - start < 60  # the hung calls sleep 120 s
