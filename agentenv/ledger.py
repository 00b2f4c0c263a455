"""The work ledger: what a collection set out to do and how each piece of work ended (reliability §4).

A store's ``ledger.jsonl`` gets an ``intent`` line when the collector hands an episode to an env (its
trajectory id, task, slot and attempt) and a ``terminal`` line once the episode is committed to the store
(``completed``, ``truncated``, ``failed_model`` or ``failed_infra``, with the hash of the stored row), or
``cancelled`` when the run stops with it in flight. :func:`check_ledger` proves that nothing was lost or
doubled, whatever crashed in between:

* **L1**: no attempt has two terminal records, and every slot (a task's sample, a tree's branch) has
  exactly one final status across its attempts;
* **L2**: every intent is closed (a terminal record follows it), and, when the expected slots are given,
  each has a final status;
* **L3**: the store's rows are exactly the committed terminal records: ids unique, every row readable,
  and each row's content hash equal to the one logged at commit.

A crash leaves intents open; the resumed collection re-runs them (same trajectory id) and closes them. A
torn last line (the process died mid-append) is cut off when the ledger is opened again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentenv.budget import slot_id
from agentenv.trajectory import Trajectory, is_model_cause

LEDGER_FILE = "ledger.jsonl"


def terminal_status(traj: Trajectory) -> str:
    """How an episode ended, in the ledger's terms."""
    if traj.status == "failed":
        return "failed_model" if is_model_cause(traj.failure_cause) else "failed_infra"
    return "truncated" if traj.truncated and not traj.terminated else "completed"


def row_hash(row: dict[str, Any]) -> str:
    """The content hash of one stored row (as pyarrow gives it back), canonical JSON through SHA-256."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Ledger:
    """Appends the records of one store's collection (safe from the collector's threads)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.path = Path(directory) / LEDGER_FILE
        self._lock = threading.Lock()
        self._file: Any = None

    def open(self) -> Ledger:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self.path.exists():
                _cut_torn_tail(self.path)
            self._file = self.path.open("a", encoding="utf-8")
        return self

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Ledger:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reconcile(self) -> tuple[int, int]:
        """Close what an earlier process left open (it died): an episode that reached the store but not the
        ledger (between the shard's commit and the ledger's line) gets its terminal record from the stored
        row; one that was in flight is ``cancelled`` (cause ``interrupted``), and the resumed collection runs
        it again under a new intent. Returns (recovered, interrupted). Called when a collection opens the
        ledger, so no intent outlives the process that wrote it."""
        from agentenv.store import TrajectoryStore

        records, _ = read_ledger(self.path.parent)
        open_intents = _open_intents(records)
        open_ids = set(open_intents)
        if not open_ids:
            return 0, 0
        store = TrajectoryStore(self.path.parent)
        found: list[dict[str, Any]] = []
        for path in store.shard_paths():
            try:
                ids = store._load(path, ["trajectory_id"]).column("trajectory_id").to_pylist()
                if open_ids.intersection(ids):
                    found += [row for row in store._load(path).to_pylist() if row["trajectory_id"] in open_ids]
            except Exception:  # a corrupt shard's rows were never committed whole; the check reports it
                continue
        recovered = [(Trajectory.from_row(row), row_hash(row)) for row in found]
        if recovered:
            self.committed([t for t, _ in recovered], [h for _, h in recovered])
        interrupted = sorted(open_ids - {t.trajectory_id for t, _ in recovered})
        for tid in interrupted:
            intent = open_intents[tid]
            self.cancelled(tid, int(intent.get("task", 0)), int(intent.get("attempt", 0)), cause="interrupted")
        return len(recovered), len(interrupted)

    def intent(self, trajectory_id: str, task: int, attempt: int) -> None:
        self._append([{"e": "intent", "id": trajectory_id, "task": task, "slot": slot_id(trajectory_id),
                       "attempt": attempt, "t": round(time.time(), 3)}], sync=False)

    def committed(self, trajectories: Sequence[Trajectory], hashes: Sequence[str]) -> None:
        """Close the intents of episodes that are now in the store (after the shard's atomic write)."""
        self._append([{"e": "terminal", "id": t.trajectory_id, "task": t.task_index,
                       "slot": slot_id(t.trajectory_id), "attempt": t.attempt, "status": terminal_status(t),
                       "cause": t.failure_cause, "hash": h} for t, h in zip(trajectories, hashes, strict=True)],
                     sync=True)

    def cancelled(self, trajectory_id: str, task: int, attempt: int, cause: str | None = None) -> None:
        self._append([{"e": "terminal", "id": trajectory_id, "task": task, "slot": slot_id(trajectory_id),
                       "attempt": attempt, "status": "cancelled", "cause": cause, "hash": None}], sync=False)

    def _append(self, records: list[dict[str, Any]], sync: bool) -> None:
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        with self._lock:
            if self._file is None:
                raise RuntimeError(f"the ledger {self.path} is not open")
            self._file.write(text)
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())


def _open_intents(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The intents with no terminal record after them, by trajectory id (the latest of each)."""
    count: Counter[str] = Counter()
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        tid = r.get("id", "")
        if r.get("e") == "intent":
            count[tid] += 1
            latest[tid] = r
        else:
            count[tid] -= 1
    return {tid: latest[tid] for tid, n in count.items() if n > 0 and tid in latest}


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line that has no newline (a write cut short), so appends start on a line of their own."""
    with path.open("rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def read_ledger(directory: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The ledger's records and the problems met reading it (a line that does not parse)."""
    path = Path(directory) / LEDGER_FILE
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    if not path.exists():
        return records, [f"{path}: no ledger"]
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # a torn tail, cut when the ledger is next opened
                continue
            problems.append(f"{path}:{number}: not a JSON record")
    return records, problems


@dataclass
class LedgerReport:
    """What :func:`check_ledger` found: ``problems`` is empty when L1–L3 hold."""

    problems: list[str] = field(default_factory=list)
    intents: int = 0
    terminals: Counter[str] = field(default_factory=Counter)
    #: each slot's final status
    final: dict[str, str] = field(default_factory=dict)
    rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = (f"ledger: {self.intents} intents, terminals {dict(self.terminals)}, {len(self.final)} slots, "
                f"{self.rows} rows")
        return head + ("; OK" if self.ok else "; problems:\n  " + "\n  ".join(self.problems[:50]))


def check_ledger(directory: str | os.PathLike[str], expected_slots: Iterable[str] | None = None) -> LedgerReport:
    """Check L1–L3 for the store in ``directory`` (see the module docstring); ``expected_slots`` are the
    slot ids the collection had to fill (e.g. ``t000003-s001``), when known."""
    from agentenv.store import TrajectoryStore

    report = LedgerReport()
    records, report.problems = read_ledger(directory)
    open_intents: dict[str, int] = {}  # trajectory id -> intents not yet closed
    closed: dict[str, str] = {}  # trajectory id -> its final (non-cancelled) terminal status
    committed_hash: dict[str, str] = {}
    last_attempt: dict[str, tuple[int, str]] = {}  # slot -> (highest attempt closed, its status)
    for r in records:
        tid = r.get("id", "")
        if r.get("e") == "intent":
            report.intents += 1
            open_intents[tid] = open_intents.get(tid, 0) + 1
            continue
        status = r.get("status", "")
        report.terminals[status] += 1
        if open_intents.get(tid, 0) == 0:
            report.problems.append(f"L2: {tid} has a terminal record ({status}) without an open intent")
        else:
            open_intents[tid] -= 1
        if status == "cancelled":
            continue
        if tid in closed:
            report.problems.append(f"L1: {tid} has two terminal records ({closed[tid]}, then {status})")
        closed[tid] = status
        committed_hash[tid] = r.get("hash", "")
        slot, attempt = r.get("slot", slot_id(tid)), int(r.get("attempt", 0))
        if slot not in last_attempt or attempt >= last_attempt[slot][0]:
            last_attempt[slot] = (attempt, status)
    for tid, count in open_intents.items():
        if count:
            report.problems.append(f"L2: {tid} has an intent that was never closed")
    report.final = {slot: status for slot, (_, status) in last_attempt.items()}
    if expected_slots is not None:
        expected = set(expected_slots)
        missing, extra = sorted(expected - set(report.final)), sorted(set(report.final) - expected)
        if missing:
            report.problems.append(f"L2: {len(missing)} expected slots have no final status: {missing[:10]}")
        if extra:
            report.problems.append(f"L2: {len(extra)} slots were not expected: {extra[:10]}")
    store = TrajectoryStore(directory)
    seen: set[str] = set()
    for path in store.shard_paths():
        try:
            rows = store._load(path).to_pylist()
        except Exception as e:  # an unreadable shard is a finding, not a crash of the check
            report.problems.append(f"L3: {path.name} cannot be read: {e}")
            continue
        for row in rows:
            report.rows += 1
            tid = str(row.get("trajectory_id"))
            if tid in seen:
                report.problems.append(f"L3: {tid} is stored twice")
            seen.add(tid)
            if tid not in committed_hash:
                report.problems.append(f"L3: {tid} is stored but the ledger has no terminal record for it")
            elif committed_hash[tid] != row_hash(row):
                report.problems.append(f"L3: {tid}'s stored row does not match the hash logged at commit")
    for tid in sorted(set(committed_hash) - seen):
        report.problems.append(f"L3: {tid} was logged as committed but is not in the store")
    return report
