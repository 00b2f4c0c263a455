"""The work ledger (reliability §4, L1–L3): every collection into a store logs intents and terminal records,
and ``check_ledger`` proves nothing was lost or doubled, and catches it when something was."""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from pathlib import Path

import pytest

from agentenv.collector import CollectConfig, Collector
from agentenv.ledger import LEDGER_FILE, Ledger, check_ledger, read_ledger
from agentenv.store import TrajectoryStore
from agentenv.testing import CountdownEnv, ScriptedPolicy, expert_text


def collect(store: Path, n: int = 4, g: int = 2, retries: int = 0, **env: object) -> Collector:
    cfg = CollectConfig("countdown", n_tasks=n, group_size=g, concurrency=3, env_retries=retries, progress="off",
                        env_timeout=5)
    collector = Collector(cfg, ScriptedPolicy(expert_text), TrajectoryStore(store),
                          env_factory=functools.partial(CountdownEnv, **env))
    collector.run()
    return collector


def slots(n: int, g: int) -> list[str]:
    return [f"t{task:06d}-s{sample:03d}" for task in range(n) for sample in range(g)]


def test_a_collection_closes_every_intent_and_matches_the_store(tmp_path: Path):
    collect(tmp_path / "s")
    report = check_ledger(tmp_path / "s", expected_slots=slots(4, 2))
    assert report.ok, report
    assert report.intents == 8 and report.terminals == {"completed": 8} and report.rows == 8
    assert set(report.final.values()) == {"completed"}


def test_retried_infra_failures_end_with_one_final_status_per_slot(tmp_path: Path):
    collect(tmp_path / "s", retries=1, raise_at=1, faulty_seeds={0, 2})  # tasks 0 and 2 fail every attempt
    report = check_ledger(tmp_path / "s", expected_slots=slots(4, 2))
    assert report.ok, report
    assert report.terminals == {"failed_infra": 8, "completed": 4} and report.rows == 12  # failures are rows too
    assert report.final == {s: "failed_infra" if s[:7] in ("t000000", "t000002") else "completed"
                            for s in slots(4, 2)}  # one final status: the last attempt's


def test_a_run_cancelled_mid_episode_logs_cancelled_and_the_resume_closes_it(tmp_path: Path):
    store = tmp_path / "s"
    cfg = CollectConfig("countdown", n_tasks=6, group_size=1, concurrency=2, progress="off")

    async def cancelled_run() -> None:
        collector = Collector(cfg, ScriptedPolicy(expert_text), TrajectoryStore(store),
                              env_factory=functools.partial(CountdownEnv, step_seconds=0.2))
        task = asyncio.create_task(collector.arun())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_run())
    records, _ = read_ledger(store)
    assert any(r.get("status") == "cancelled" for r in records)
    Collector(cfg, ScriptedPolicy(expert_text), TrajectoryStore(store),
              env_factory=functools.partial(CountdownEnv, step_seconds=0.01)).run()
    report = check_ledger(store, expected_slots=slots(6, 1))
    assert report.ok, report
    assert report.terminals["cancelled"] >= 1 and set(report.final.values()) == {"completed"}


def test_the_check_finds_doubled_lost_and_altered_work(tmp_path: Path):
    store = tmp_path / "s"
    collect(store, n=2, g=1)
    path = store / LEDGER_FILE
    lines = path.read_text().splitlines()
    terminal = next(line for line in lines if '"terminal"' in line)
    path.write_text("\n".join([*lines, terminal]) + "\n")  # a terminal logged twice
    assert any(p.startswith("L1") for p in check_ledger(store).problems)
    path.write_text("\n".join(line for line in lines if line != terminal) + "\n")  # a commit never logged
    problems = check_ledger(store).problems
    assert any(p.startswith("L2") for p in problems) and any("no terminal record" in p for p in problems)
    altered = [json.loads(line) for line in lines]
    for record in altered:
        if record["e"] == "terminal":
            record["hash"] = "0" * 32
    path.write_text("".join(json.dumps(r) + "\n" for r in altered))
    assert sum("does not match the hash" in p for p in check_ledger(store).problems) == 2
    path.write_text("\n".join(lines) + "\n")
    assert check_ledger(store).ok
    assert not check_ledger(store, expected_slots=slots(3, 1)).ok  # a slot that was never filled


def test_a_torn_last_line_is_ignored_and_cut_when_the_ledger_reopens(tmp_path: Path):
    store = tmp_path / "s"
    collect(store, n=2, g=1)
    path = store / LEDGER_FILE
    whole = path.read_text()
    path.write_text(whole + '{"e":"inte')  # the process died mid-append
    assert check_ledger(store).ok
    with Ledger(store):
        pass
    assert path.read_text() == whole
    collect(store, n=3, g=1)
    report = check_ledger(store, expected_slots=slots(3, 1))
    assert report.ok, report
    assert Counter(r["e"] for r in read_ledger(store)[0]) == {"intent": 3, "terminal": 3}


def test_a_resumed_retry_is_a_new_attempt_not_a_second_row_under_the_failed_id(tmp_path: Path):
    store = tmp_path / "s"
    collect(store, retries=0, raise_at=1, faulty_seeds={1})  # task 1 fails, with no retries
    collect(store, retries=1, raise_at=1, faulty_seeds={1})  # the same run, now with one retry: resume
    ids = [t.trajectory_id for t in TrajectoryStore(store).episodes()]
    assert len(ids) == len(set(ids)) == 10 and {"t000001-s000-a1", "t000001-s001-a1"} <= set(ids)
    report = check_ledger(store, expected_slots=slots(4, 2))
    assert report.ok, report


def test_a_row_committed_but_never_logged_is_recovered_from_the_store_on_the_next_run(tmp_path: Path):
    store = tmp_path / "s"
    collect(store, n=3, g=1)
    path = store / LEDGER_FILE
    lines = path.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if '"terminal"' in line)
    path.write_text("\n".join(lines[:last] + lines[last + 1:]) + "\n")  # died between commit and log
    assert not check_ledger(store).ok
    collect(store, n=3, g=1)  # nothing left to run, but the ledger is reconciled with the store
    report = check_ledger(store, expected_slots=slots(3, 1))
    assert report.ok, report
    assert report.terminals == {"completed": 3} and report.rows == 3
