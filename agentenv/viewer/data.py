"""What the viewer reads: runs and stores found under the given paths, a lazy per-store episode index, and
one episode laid out for display.

The index is the only thing that must stay fast on large stores. It is built from a column projection of
each shard (scalar columns plus the leaf columns ``turns.*.completion_mask`` and ``turns.*.info``), never
from :class:`~agentenv.trajectory.Trajectory` objects, and cached per shard by (name, size, mtime): shards
are immutable once renamed into place, so a growing store only reads its new shards.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from agentenv.store import CorruptShardError, TrajectoryStore
from agentenv.trajectory import Trajectory

__all__ = [
    "INDEX_COLUMNS",
    "RunInfo",
    "Sources",
    "StoreIndex",
    "StoreInfo",
    "discover",
    "episode_advantage",
    "episode_json",
    "load_advantages",
    "read_metrics",
]

#: the columns of an index row, in the order the episodes table shows them
INDEX_COLUMNS = ("trajectory_id", "group_id", "task_id", "env_id", "task_type", "status", "success", "reward",
                 "turns", "failure_cause", "policy_version", "kind", "tree_id", "parent_trajectory_id",
                 "trained_tokens", "branch_turn", "branch_token_offset")
_SCALARS: dict[str, tuple[pa.DataType, Any]] = {
    "trajectory_id": (pa.string(), None), "group_id": (pa.string(), ""), "task_id": (pa.string(), ""),
    "env_id": (pa.string(), ""), "status": (pa.string(), "ok"), "reward": (pa.float64(), 0.0),
    "terminated": (pa.bool_(), False), "failure_cause": (pa.string(), None),
    "policy_version": (pa.int64(), 0), "kind": (pa.string(), "init"), "tree_id": (pa.string(), None),
    "parent_trajectory_id": (pa.string(), None), "branch_turn": (pa.int64(), None),
    "branch_token_offset": (pa.int64(), None), "extra": (pa.string(), "{}"),
}
_TURN_LEAVES = ("completion_mask", "info")
_TASK_TYPE = re.compile(r'"task_type": "(?P<task_type>(?:[^"\\]|\\.)*)"')
_WON = re.compile(r'"won": (?P<won>true|false|1|0)')
FACETS = {"env": "env_id", "task_type": "task_type", "status": "status", "failure_cause": "failure_cause",
          "kind": "kind"}


# --------------------------------------------------------------------------------------------- discovery


@dataclass
class StoreInfo:
    id: str
    name: str
    path: Path
    run: str | None
    split: str
    step: int | None

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": str(self.path), "run": self.run, "split": self.split,
                "step": self.step, "episodes": _episode_count(self.path)}


@dataclass
class RunInfo:
    id: str
    name: str
    path: Path
    stores: list[str] = field(default_factory=list)

    @property
    def has_metrics(self) -> bool:
        return (self.path / "metrics.jsonl").is_file()

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": str(self.path), "has_metrics": self.has_metrics,
                "stores": list(self.stores)}

    def config(self) -> dict[str, Any]:
        try:
            data = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


@dataclass
class Sources:
    runs: dict[str, RunInfo] = field(default_factory=dict)
    stores: dict[str, StoreInfo] = field(default_factory=dict)
    #: paths given that held nothing the viewer can show, with the reason
    problems: list[str] = field(default_factory=list)


def _is_store(path: Path) -> bool:
    return (path / "shards").is_dir() or (path / "manifest.json").is_file()


def _is_run(path: Path) -> bool:
    return (path / "metrics.jsonl").is_file() or (path / "rollouts").is_dir()


def _episode_count(path: Path) -> int | None:
    """From the manifest (no data read); None when it is missing or unreadable."""
    try:
        manifest = TrajectoryStore(path).manifest()
        return None if manifest is None else sum(int(s.get("episodes", 0)) for s in manifest.get("shards", []))
    except (ValueError, OSError, TypeError):
        return None


#: how deep a folder given to the viewer is searched for runs and stores
SCAN_DEPTH = 3


def _walk(folder: Path, depth: int) -> Iterator[Path]:
    """The runs and stores under ``folder``, in name order, not looking inside them or deeper than ``depth``."""
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        if _is_run(child) or _is_store(child):
            yield child
        elif depth > 1:
            yield from _walk(child, depth - 1)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "x"


def discover(paths: Iterable[str | Path]) -> Sources:
    """Runs and stores under ``paths``: each a run dir, a store, or a folder holding those (up to
    ``SCAN_DEPTH`` levels down; a run or store found deeper is named by its path under the folder).

    Ids are slugs of the names with a counter on clashes, assigned in the order found, so the same paths
    give the same ids (and shared links keep working across restarts)."""
    sources = Sources()
    used: set[str] = set()

    def new_id(name: str) -> str:
        base = _slug(name)
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}-{n}"
        used.add(candidate)
        return candidate

    def add_store(path: Path, run: RunInfo | None, split: str, step: int | None, label: str | None = None) -> None:
        name = f"{run.name}/{split}/{step}" if run is not None and step is not None else label or path.name
        info = StoreInfo(new_id(name.replace("/", "-")), name, path, run.id if run else None, split, step)
        sources.stores[info.id] = info
        if run is not None:
            run.stores.append(info.id)

    def add_run(path: Path, label: str | None = None) -> None:
        name = label or path.name
        run = RunInfo(new_id(name.replace("/", "-")), name, path)
        sources.runs[run.id] = run
        for split, folder in (("train", "rollouts"), ("eval", "eval")):
            steps = sorted((path / folder).glob("step-*")) if (path / folder).is_dir() else []
            for store in steps:
                if _is_store(store):
                    digits = store.name.removeprefix("step-")
                    add_store(store, run, split, int(digits) if digits.isdigit() else None)

    for given in paths:
        path = Path(given).expanduser().resolve()
        if not path.is_dir():
            sources.problems.append(f"{given}: not a directory")
        elif _is_run(path):
            add_run(path)
        elif _is_store(path):
            add_store(path, None, "store", None)
        else:
            found = False
            for child in _walk(path, SCAN_DEPTH):
                label = str(child.relative_to(path))
                if _is_run(child):
                    add_run(child, label)
                else:
                    add_store(child, None, "store", None, label)
                found = True
            if not found:
                sources.problems.append(f"{given}: holds no training run or trajectory store")
    return sources


# --------------------------------------------------------------------------------------------- metrics


def read_metrics(path: Path) -> dict[str, Any]:
    """The rows of ``metrics.jsonl``; bad lines are skipped and named in ``error`` rather than failing."""
    records: list[dict[str, Any]] = []
    bad: list[int] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        return {"records": [], "keys": [], "error": f"cannot read {path}: {e}"}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad.append(n)
            continue
        if isinstance(row, dict):
            records.append(row)
        else:
            bad.append(n)
    keys = sorted({k for r in records for k, v in r.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)})
    error = f"{path}: skipped unreadable lines {', '.join(map(str, bad[:10]))}" if bad else None
    return {"records": records, "keys": keys, "error": error}


def load_advantages(store_path: Path) -> dict[str, list[dict[str, Any]]]:
    """``STORE/advantages.jsonl`` by trajectory id, as the trainer wrote it for the step: lines
    ``{"trajectory_id", "turn": int|null, "advantage": float|[float]}`` (``turn`` null: a row over the whole
    episode; a list: one value per trained token (``completion_mask`` 1) of the row, in order)."""
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        text = (store_path / "advantages.jsonl").read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("trajectory_id"), str):
            out.setdefault(row["trajectory_id"], []).append(row)
    return out


# --------------------------------------------------------------------------------------------- index


def _shard_index(path: Path, store: TrajectoryStore) -> tuple[pa.Table, list[str]]:
    """The index rows of one shard, from a column projection; notes name columns it lacked."""
    schema = store._inspect(path).schema.to_arrow_schema()
    names = set(schema.names)
    notes = []
    leaves = []
    if "turns" in names:
        turn_type = schema.field("turns").type.value_type
        have = {turn_type.field(i).name for i in range(turn_type.num_fields)}
        leaves = [leaf for leaf in _TURN_LEAVES if leaf in have]
    wanted = [c for c in _SCALARS if c in names]
    columns = wanted + [f"turns.list.element.{leaf}" for leaf in leaves]
    try:
        table = pq.ParquetFile(path).read(columns=columns)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise CorruptShardError(path, f"unreadable data ({e})") from e
    n = table.num_rows
    missing = sorted(set(_SCALARS) - names - {"extra"})
    if missing:
        notes.append(f"{path.name}: no column {', '.join(missing)} (shown empty)")
    cols: dict[str, pa.Array] = {}
    for name, (dtype, default) in _SCALARS.items():
        cols[name] = (table.column(name).combine_chunks().cast(dtype) if name in names
                      else pa.array([default] * n, dtype))
    turns_col = table.column("turns").combine_chunks() if leaves else None
    if turns_col is None:
        counts = np.zeros(n, dtype=np.int64)
        trained = np.zeros(n, dtype=np.int64)
        won = pa.nulls(n, pa.string())
        if "turns" not in names:
            notes.append(f"{path.name}: no column turns (turn counts shown as 0)")
    else:
        counts = pc.fill_null(pc.list_value_length(turns_col), 0).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(turns_col)
        if "completion_mask" in leaves:
            masks = flat.field("completion_mask")
            turn_of_token = pc.list_parent_indices(masks).to_numpy()
            values = pc.list_flatten(masks).to_numpy(zero_copy_only=False)
            episode_of_turn = pc.list_parent_indices(turns_col).to_numpy()
            trained = np.bincount(episode_of_turn[turn_of_token], weights=values, minlength=n).astype(np.int64)
        else:
            trained = np.zeros(n, dtype=np.int64)
        if "info" in leaves:
            offsets = turns_col.offsets.to_numpy()
            last = np.where(counts > 0, offsets[1:] - 1, 0)
            infos = flat.field("info")
            picked = infos.take(pa.array(last)) if len(infos) else pa.nulls(n, pa.string())
            picked = pc.if_else(pa.array(counts > 0), picked, pa.nulls(n, pa.string()))
            won = pc.struct_field(pc.extract_regex(picked, _WON.pattern), [0])
        else:
            won = pa.nulls(n, pa.string())
    task_type = pc.struct_field(pc.extract_regex(cols["extra"], _TASK_TYPE.pattern), [0])
    positive = pc.and_(pc.equal(cols["status"], "ok"), cols["terminated"])
    by_won = pc.is_in(won, value_set=pa.array(["true", "1"]))
    success = pc.and_(positive, pc.if_else(pc.is_valid(won), by_won, pc.greater(cols["reward"], 0.0)))
    out = {name: cols[name] for name in _SCALARS if name not in ("extra", "terminated")}
    out.update(task_type=pc.fill_null(task_type, ""), success=pc.fill_null(success, False),
               turns=pa.array(counts, pa.int64()), trained_tokens=pa.array(trained, pa.int64()))
    return pa.table({name: out[name] for name in INDEX_COLUMNS}), notes


class StoreIndex:
    """The scalar view of one store's episodes, cached per shard and refreshed when shards appear."""

    def __init__(self, path: Path):
        self.store = TrajectoryStore(path)
        self._shards: dict[str, tuple[tuple[int, int], pa.Table | None, list[str]]] = {}
        self._table: pa.Table | None = None
        self._key: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._paths: list[Path] = []
        self.errors: list[str] = []

    def table(self) -> pa.Table:
        """All index rows, plus ``_shard`` and ``_row`` columns locating each episode; refreshes ``errors``."""
        with self._lock:
            listing = self.store.shard_paths()
            stats = []
            for p in listing:
                try:
                    st = p.stat()
                    stats.append((p.name, (st.st_size, st.st_mtime_ns)))
                except OSError:
                    continue
            key = tuple(stats)
            if key == self._key and self._table is not None:
                return self._table
            fresh: dict[str, tuple[tuple[int, int], pa.Table | None, list[str]]] = {}
            for name, stat in stats:
                cached = self._shards.get(name)
                if cached is not None and cached[0] == stat:
                    fresh[name] = cached
                    continue
                try:
                    table, notes = _shard_index(self.store.shards_dir / name, self.store)
                    fresh[name] = (stat, table, notes)
                except CorruptShardError as e:
                    fresh[name] = (stat, None, [f"skipped {e.path.name}: {e.reason}"])
            self._shards = fresh
            parts = []
            errors: list[str] = []
            for i, (name, _) in enumerate(stats):
                _, table, notes = fresh[name]
                errors.extend(notes)
                if table is not None:
                    parts.append(table.append_column("_shard", pa.array([i] * table.num_rows, pa.int32()))
                                 .append_column("_row", pa.array(np.arange(table.num_rows), pa.int64())))
            if not self.store.shards_dir.is_dir():
                errors.append(f"{self.store.directory} has no shards/ folder yet (no episodes written)")
            self._paths = [self.store.shards_dir / name for name, _ in stats]
            self._table = pa.concat_tables(parts) if parts else _empty_index()
            self._key = key
            self.errors = errors
            return self._table

    def query(self, filters: dict[str, Any], sort: str | None, descending: bool, offset: int,
              limit: int) -> dict[str, Any]:
        table = self.table()
        errors = list(self.errors)
        facets = {name: sorted(v for v in pc.unique(table.column(col)).to_pylist() if v not in (None, ""))
                  for name, col in FACETS.items()}
        mask = _filter_mask(table, filters, errors)
        if mask is not None:
            table = table.filter(mask)
        if sort:
            if sort in INDEX_COLUMNS:
                order = "descending" if descending else "ascending"
                table = table.take(pc.sort_indices(table, sort_keys=[(sort, order), ("trajectory_id", "ascending")]))
            else:
                errors.append(f"cannot sort by {sort!r}; columns: {', '.join(INDEX_COLUMNS)}")
        page = table.slice(offset, limit).select(list(INDEX_COLUMNS))
        return {"total": table.num_rows, "offset": offset, "limit": limit, "rows": page.to_pylist(),
                "facets": facets, "errors": errors}

    def rows_where(self, column: str, value: str) -> list[dict[str, Any]]:
        table = self.table()
        return table.filter(pc.equal(table.column(column), value)).select(list(INDEX_COLUMNS)).to_pylist()

    def locate(self, trajectory_id: str) -> tuple[Path, int] | None:
        """The shard and row of an episode (the last attempt, when a retry stored it twice)."""
        table = self.table()
        hits = table.filter(pc.equal(table.column("trajectory_id"), trajectory_id))
        if not hits.num_rows:
            return None
        return self._paths[hits.column("_shard")[-1].as_py()], hits.column("_row")[-1].as_py()

    def trajectory(self, trajectory_id: str) -> Trajectory | None:
        where = self.locate(trajectory_id)
        if where is None:
            return None
        path, row = where
        table = self.store._load(path)
        return Trajectory.from_row(table.slice(row, 1).to_pylist()[0])


def _empty_index() -> pa.Table:
    types = {name: dtype for name, (dtype, _) in _SCALARS.items()}
    types.update(task_type=pa.string(), success=pa.bool_(), turns=pa.int64(), trained_tokens=pa.int64())
    schema = pa.schema([(name, types[name]) for name in INDEX_COLUMNS]
                       + [("_shard", pa.int32()), ("_row", pa.int64())])
    return schema.empty_table()


def _bool(value: str) -> bool | None:
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(value.lower())


def _filter_mask(table: pa.Table, filters: dict[str, Any], errors: list[str]) -> Any:
    """One boolean mask for all given filters; a value that does not parse is reported, not fatal."""
    masks = []
    equal = {"env": "env_id", "task_type": "task_type", "status": "status", "failure_cause": "failure_cause",
             "group": "group_id", "kind": "kind"}
    for key, value in filters.items():
        if value is None or value == "":
            continue
        try:
            if key in equal:
                masks.append(pc.equal(table.column(equal[key]), value))
            elif key == "success":
                flag = _bool(str(value))
                if flag is None:
                    raise ValueError("expected true or false")
                masks.append(pc.equal(table.column("success"), flag))
            elif key == "policy_version":
                masks.append(pc.equal(table.column("policy_version"), int(value)))
            elif key in ("min_reward", "max_reward"):
                compare = pc.greater_equal if key == "min_reward" else pc.less_equal
                masks.append(compare(table.column("reward"), float(value)))
            elif key in ("min_turns", "max_turns"):
                compare = pc.greater_equal if key == "min_turns" else pc.less_equal
                masks.append(compare(table.column("turns"), int(value)))
            elif key == "q":
                masks.append(pc.match_substring(table.column("trajectory_id"), str(value), ignore_case=True))
        except ValueError as e:
            errors.append(f"filter {key}={value!r} ignored: {e}")
    if not masks:
        return None
    mask = masks[0]
    for m in masks[1:]:
        mask = pc.and_(mask, m)
    return pc.fill_null(mask, False)


# --------------------------------------------------------------------------------------------- one episode


def _images(messages: Sequence[Any]) -> list[str]:
    """Data URLs of the images in OpenAI-format messages (remote URLs are left out: the page is offline)."""
    out = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    url = part.get("image_url")
                    url = url.get("url") if isinstance(url, dict) else url
                    if isinstance(url, str) and url.startswith("data:image/"):
                        out.append(url)
    return out


def episode_advantage(records: Sequence[dict[str, Any]]) -> float | None:
    """One number for an episode from its recorded advantages: the whole-episode value (a per-token list's
    mean), else the mean over its turns' values; None when the run recorded none."""
    values = []
    for record in records:
        a = record.get("advantage")
        if isinstance(a, list):
            a = sum(a) / len(a) if a else None
        if a is not None:
            if record.get("turn") is None:
                return float(a)
            values.append(float(a))
    return sum(values) / len(values) if values else None


def episode_json(traj: Trajectory, decode: Callable[[list[int]], list[str | None]] | None,
                 advantages: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """One episode for the page: every field, and per turn its tokens with mask, log-prob and entropy."""
    out: dict[str, Any] = {name: getattr(traj, name) for name in traj.__dataclass_fields__ if name != "turns"}
    out["success"] = traj.success
    by_turn: dict[int | None, Any] = {a.get("turn"): a.get("advantage") for a in advantages}
    whole = by_turn.get(None)
    out["advantage"] = sum(whole) / len(whole) if isinstance(whole, list) and whole else whole
    if isinstance(whole, list):  # one value per trained token of the episode: split it turn by turn
        start = 0
        for turn in traj.turns:
            n = int(sum(turn.completion_mask))
            by_turn.setdefault(turn.index, whole[start:start + n])
            start += n
    turns = []
    for turn in traj.turns:
        row: dict[str, Any] = {name: getattr(turn, name) for name in turn.__dataclass_fields__
                               if name not in ("top_ids", "top_logprobs")}
        prompt_text = decode(turn.prompt_ids) if decode else [None] * len(turn.prompt_ids)
        completion_text = decode(turn.completion_ids) if decode else [None] * len(turn.completion_ids)
        completion = []
        for i, token in enumerate(turn.completion_ids):
            completion.append({
                "id": token, "text": completion_text[i],
                "trained": bool(turn.completion_mask[i]) if i < len(turn.completion_mask) else False,
                "logprob": turn.logprobs[i] if i < len(turn.logprobs) else None,
                "entropy": turn.entropies[i] if i < len(turn.entropies) else None,
            })
        row["tokens"] = {"prompt": [{"id": t, "text": s} for t, s in zip(turn.prompt_ids, prompt_text, strict=True)],
                         "completion": completion, "trained_count": int(sum(turn.completion_mask))}
        advantage = by_turn.get(turn.index, whole)
        if isinstance(advantage, list):
            trained = [c for c in completion if c["trained"]]
            for c, a in zip(trained, advantage, strict=False):
                c["advantage"] = a
            row["advantage"] = sum(advantage) / len(advantage) if advantage else None
        else:
            row["advantage"] = advantage
        row["images"] = _images(turn.observation) + _images(turn.feedback)
        turns.append(row)
    out["turns"] = turns
    return out
