"""A directory of Parquet shards holding trajectories: crash-safe to write, readable by any Parquet tool.

Layout::

    DIR/manifest.json                              metadata: format, schema version, run identity, shard list
    DIR/shards/shard-{seq:06d}-{uuid8}.parquet     one row per episode (``Trajectory.to_row()``)

Why this shape:

* **One shard per write, written atomically.** The collector group-commits finished episodes; each commit
  goes to a hidden temp file, is fsynced, then renamed into place. A crash leaves either the whole shard
  or a hidden temp file that readers ignore (and the next write deletes), never a half-written shard.
  Shards are never modified after the rename, so readers need no locks.
* **The listing of ``shards/`` is the truth for data; the manifest is metadata.** A crash between the
  shard rename and the manifest rewrite leaves a shard the manifest does not list; it is still read, and
  the next write repairs the manifest. The manifest records the run identity so that a resumed collection
  can refuse to mix episodes of a different run into the same directory (:meth:`TrajectoryStore.open_run`).
* **One explicit Arrow schema** (:data:`TRAJECTORY_SCHEMA`), built from the dataclass fields, so every
  shard has the same column types even when all lists in a batch are empty (inference would give ``null``
  types and shards that do not concatenate). Free-form dicts are JSON strings, so plain ``pyarrow``,
  ``pandas`` and Hugging Face ``datasets`` read the shards without agentenv.
* **Damage is isolated per file.** A file in ``shards/`` that is not a readable shard of our schema raises
  :class:`CorruptShardError` naming it, or with ``errors="skip"`` is warned about and skipped, so one bad
  file does not make the rest of a long collection unreadable. :meth:`TrajectoryStore.verify` lists them.

Writers: one process per directory. Within a process, any number of threads and store objects may write
the same directory (a per-directory lock serialises shard numbering and manifest rewrites).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import reprlib
import threading
import types
import typing
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from agentenv import trajectory as _trajectory
from agentenv.trajectory import _TURN_JSON_FIELDS, Trajectory, Turn

__all__ = [
    "MANIFEST_FORMAT",
    "TRAJECTORY_SCHEMA",
    "TURN_TYPE",
    "CorruptShardError",
    "StoreMismatchError",
    "TrajectoryStore",
    "TurnSample",
]

MANIFEST_FORMAT = "agentenv-trajectories"
Errors = Literal["raise", "skip"]

_TRAJECTORY_JSON_FIELDS = ("env_kwargs", "extra")
_SHARD_NAME = re.compile(r"^shard-(\d{6,})-([0-9a-f]{8})\.parquet$")
_TMP_SUFFIX = ".tmp"


# --------------------------------------------------------------------------------------------- schema


def _arrow_type(hint: Any, where: str) -> tuple[pa.DataType, bool]:
    """The Arrow type and nullability for a dataclass field's type hint.

    Explicit rather than inferred, so an all-empty batch still gets ``list<int64>`` and not ``list<null>``;
    an unsupported hint raises at import time instead of producing shards that other readers mis-type.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{where}: cannot store union type {hint!r}")
        inner, _ = _arrow_type(args[0], where)
        return inner, True
    if origin is Literal:
        if not all(isinstance(a, str) for a in typing.get_args(hint)):
            raise TypeError(f"{where}: only string Literal types are stored, got {hint!r}")
        return pa.string(), False
    if origin is list:
        (item,) = typing.get_args(hint)
        item_type, item_nullable = _arrow_type(item, where)
        return pa.list_(pa.field("element", item_type, nullable=item_nullable)), False
    scalars: dict[Any, pa.DataType] = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}
    if hint in scalars:
        return scalars[hint], False
    raise TypeError(f"{where}: no Arrow type for {hint!r} (free-form dicts must be listed as JSON fields)")


def _struct_fields(cls: type, json_fields: Iterable[str], nested: Mapping[str, pa.DataType]) -> list[pa.Field]:
    hints = typing.get_type_hints(cls)
    json_fields = set(json_fields)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in nested:
            out.append(pa.field(f.name, nested[f.name], nullable=False))
        elif f.name in json_fields:
            out.append(pa.field(f.name, pa.string(), nullable=False))
        else:
            arrow_type, nullable = _arrow_type(hints[f.name], f"{cls.__name__}.{f.name}")
            out.append(pa.field(f.name, arrow_type, nullable=nullable))
    return out


#: one turn, as stored inside the ``turns`` column (a list of these structs)
TURN_TYPE = pa.struct(_struct_fields(Turn, _TURN_JSON_FIELDS, {}))
#: the schema of every shard: one row per episode
TRAJECTORY_SCHEMA = pa.schema(
    _struct_fields(Trajectory, _TRAJECTORY_JSON_FIELDS, {"turns": pa.list_(pa.field("element", TURN_TYPE, False))})
)


def _required(cls: type) -> set[str]:
    return {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


# A file is one of ours if it has the fields ``from_row`` cannot default (plus ``schema_version``, which every
# shard has carried since version 1). Other columns may be absent: an optional field added later reads
# with its default from older shards.
_REQUIRED_COLUMNS = _required(Trajectory) | {"schema_version"}
_REQUIRED_TURN_FIELDS = _required(Turn)
_KEY_COLUMNS = ("trajectory_id", "task_index", "sample_index", "attempt", "status")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Trajectory) if f.default is not dataclasses.MISSING}


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a column written as ``actual`` reads back as the Python values ``expected`` would give."""
    if pa.types.is_struct(expected):
        if not pa.types.is_struct(actual):
            return False
        got = {actual.field(i).name: actual.field(i).type for i in range(actual.num_fields)}
        return all(
            _compatible(got[expected.field(i).name], expected.field(i).type)
            for i in range(expected.num_fields)
            if expected.field(i).name in got
        )
    if pa.types.is_list(expected):
        is_list = pa.types.is_list(actual) or pa.types.is_large_list(actual) or pa.types.is_fixed_size_list(actual)
        return is_list and _compatible(actual.value_type, expected.value_type)
    for kind in (pa.types.is_string, pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean):
        if kind(expected):
            return bool(kind(actual) or (kind is pa.types.is_string and pa.types.is_large_string(actual)))
    return bool(actual.equals(expected))


def _schema_problem(schema: pa.Schema) -> str | None:
    """Why a Parquet file's schema is not a trajectory shard's, or None if it is."""
    names = set(schema.names)
    missing = sorted(_REQUIRED_COLUMNS - names)
    if missing:
        return (
            f"not an agentenv trajectory shard: missing columns {', '.join(missing)} "
            f"(has {', '.join(schema.names) or 'no columns'})"
        )
    for expected in TRAJECTORY_SCHEMA:
        if expected.name in names:
            actual = schema.field(expected.name).type
            if not _compatible(actual, expected.type):
                return f"column {expected.name!r} has type {actual}, expected {expected.type}"
    if "turns" in names:
        turn = schema.field("turns").type.value_type
        missing = sorted(_REQUIRED_TURN_FIELDS - {turn.field(i).name for i in range(turn.num_fields)})
        if missing:
            return f"column 'turns' lacks the turn fields {', '.join(missing)}"
    return None


# --------------------------------------------------------------------------------------------- errors


class CorruptShardError(ValueError):
    """A file in ``shards/`` that is not a readable trajectory shard (damaged, truncated, foreign, too new)."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"unreadable trajectory shard {self.path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # the default would call __init__ with the message only
        return (type(self), (self.path, self.reason))


class StoreMismatchError(ValueError):
    """The directory holds episodes of a different run; resuming into it would mix two collections."""

    def __init__(self, directory: str | os.PathLike[str], keys: Sequence[str], message: str):
        self.directory = Path(directory)
        self.keys = list(keys)
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.directory, self.keys, str(self)))


# --------------------------------------------------------------------------------------------- samples


@dataclass
class TurnSample:
    """One policy turn flattened for a trainer: the exact sampled tokens and which of them to train on.

    ``input_ids`` is the full prompt the policy saw followed by its completion; ``loss_mask`` is 0 over the
    prompt (``input_ids[:prompt_len]``) and the turn's ``completion_mask`` over the completion.
    ``logprobs`` are the behaviour log-probs of the completion tokens only (aligned with
    ``input_ids[prompt_len:]``; empty when the policy did not record them).
    """

    trajectory_id: str
    group_id: str
    turn: int
    input_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    reward: float
    episode_reward: float
    anchor_key: str
    prompt_len: int

    @property
    def completion_ids(self) -> list[int]:
        return self.input_ids[self.prompt_len :]


# --------------------------------------------------------------------------------------------- store

_DIR_LOCKS: dict[Path, threading.Lock] = {}
_DIR_LOCKS_GUARD = threading.Lock()


def _dir_lock(directory: Path) -> threading.Lock:
    """One lock per directory per process, so two store objects on one directory do not race either."""
    key = directory.resolve()
    with _DIR_LOCKS_GUARD:
        return _DIR_LOCKS.setdefault(key, threading.Lock())


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the new directory entry must reach the disk, not only the file's data."""
    if os.name != "posix":  # Windows cannot open directories; its renames are journaled by NTFS
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: typing.Callable[[typing.BinaryIO], object]) -> None:
    """Write via a hidden temp file in the same directory, fsync, rename over ``path``, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _check_errors(errors: str) -> None:
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")


def _jsonable(value: Mapping[str, Any]) -> dict[str, Any]:
    """The run dict as it will read back from the manifest (tuples become lists...), so comparisons agree."""
    out: dict[str, Any] = json.loads(json.dumps(dict(value), default=repr, sort_keys=True))
    return out


def _to_table(trajectories: Sequence[Trajectory]) -> pa.Table:
    """The Arrow table of ``trajectories``; a value that does not fit the schema names its episode."""
    try:
        return pa.Table.from_pylist([t.to_row() for t in trajectories], schema=TRAJECTORY_SCHEMA)
    except (pa.ArrowException, TypeError, ValueError) as e:
        for t in trajectories:  # find the culprit: Arrow's message does not say which row
            try:
                pa.Table.from_pylist([t.to_row()], schema=TRAJECTORY_SCHEMA)
            except (pa.ArrowException, TypeError, ValueError) as row_error:
                raise ValueError(f"cannot store trajectory {t.trajectory_id!r}: {row_error}") from e
        raise


class TrajectoryStore:
    """A crash-safe, append-only directory of trajectory shards; see the module docstring."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self._lock = _dir_lock(self.directory)

    def __repr__(self) -> str:
        return f"TrajectoryStore({str(self.directory)!r})"

    @property
    def shards_dir(self) -> Path:
        return self.directory / "shards"

    @property
    def manifest_path(self) -> Path:
        return self.directory / "manifest.json"

    # ----------------------------------------------------------------------------------------- writing

    def write(self, trajectories: Sequence[Trajectory]) -> Path | None:
        """Append ``trajectories`` as one new shard, atomically, and return its path (None if empty).

        Safe to call from worker threads. The shard is complete on disk (fsynced and renamed) before the
        manifest is rewritten, so a crash at any point loses at most this batch and never corrupts data.
        """
        if not trajectories:
            return None
        # Convert before touching the disk: a bad value fails here, leaving no file behind.
        return self._write_table(_to_table(trajectories), len(trajectories))

    def commit(self, trajectories: Sequence[Trajectory]) -> list[str]:
        """:meth:`write`, returning each row's content hash (:func:`agentenv.ledger.row_hash` of the row as
        it will read back), which the work ledger logs so that a later check can prove the row intact."""
        from agentenv.ledger import row_hash

        if not trajectories:
            return []
        table = _to_table(trajectories)
        hashes = [row_hash(row) for row in table.to_pylist()]
        self._write_table(table, len(trajectories))
        return hashes

    def _write_table(self, table: pa.Table, count: int) -> Path:
        with self._lock:
            self.shards_dir.mkdir(parents=True, exist_ok=True)
            self._remove_temp_files()
            seq = 1 + max((self._seq(p) for p in self._listing()), default=0)
            path = self.shards_dir / f"shard-{seq:06d}-{uuid.uuid4().hex[:8]}.parquet"
            _atomic_write(path, lambda f: pq.write_table(table, f, compression="zstd"))
            self._write_manifest(known={path.name: count})
        return path

    def open_run(self, run: Mapping[str, Any], ignore: Iterable[str] = ("concurrency",)) -> None:
        """Record the run identity, or refuse if the directory holds a different run.

        Resuming appends to the existing shards, so every key present in both the stored and the new
        identity must agree, except those in ``ignore`` (settings such as concurrency that may change
        between attempts without changing what is collected). Raises :class:`StoreMismatchError`.
        """
        new = _jsonable(run)
        ignored = set(ignore)
        with self._lock:
            manifest = self._read_manifest()
            old: dict[str, Any] = dict((manifest or {}).get("run") or {})
            differing = sorted(k for k in old.keys() & new.keys() if k not in ignored and old[k] != new[k])
            if differing:
                short = reprlib.Repr()
                short.maxstring = short.maxother = 80
                details = "; ".join(f"{k}: stored {short.repr(old[k])}, now {short.repr(new[k])}" for k in differing)
                raise StoreMismatchError(
                    self.directory,
                    differing,
                    f"{self.directory} holds trajectories of a different run (differing keys: "
                    f"{', '.join(differing)}; {details}). Use another output directory, or delete this one "
                    "to start over.",
                )
            self.directory.mkdir(parents=True, exist_ok=True)
            self._remove_temp_files()
            self._write_manifest(manifest=manifest, run={**old, **new})

    def _read_manifest(self) -> dict[str, Any] | None:
        """The manifest, None if absent; an unreadable or foreign one raises rather than being overwritten."""
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.manifest_path} is not valid JSON ({e}); is this a trajectory store?") from e
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(
                f"{self.manifest_path} is not an agentenv trajectory manifest (format {MANIFEST_FORMAT!r} expected)"
            )
        version = int(manifest.get("schema_version", 0))
        if version > _trajectory.SCHEMA_VERSION:
            raise ValueError(
                f"{self.directory} was written with schema version {version}; this agentenv writes "
                f"{_trajectory.SCHEMA_VERSION}: upgrade agentenv or use another output directory"
            )
        return manifest

    def _write_manifest(
        self,
        *,
        known: Mapping[str, int] | None = None,
        manifest: dict[str, Any] | None = None,
        run: Mapping[str, Any] | None = None,
    ) -> None:
        """Rebuild the manifest from the listing of ``shards/`` (repairing it) and replace it atomically."""
        if manifest is None:
            try:
                manifest = self._read_manifest()
            except ValueError as e:  # metadata only: rebuild it rather than refuse to store data
                warnings.warn(f"rebuilding the manifest: {e}", stacklevel=3)
                manifest = None
        listed = {s["file"]: s for s in (manifest or {}).get("shards", []) if isinstance(s, dict) and "file" in s}
        shards = []
        for path in self._listing():
            size = path.stat().st_size
            if known and path.name in known:
                episodes = known[path.name]
            elif path.name in listed and listed[path.name].get("bytes") == size:
                episodes = int(listed[path.name]["episodes"])
            else:  # on disk but not (correctly) listed: a crash before the last manifest write
                try:
                    episodes = self._inspect(path).num_rows
                except CorruptShardError:
                    continue  # not data; verify() and the readers report it
            shards.append({"file": path.name, "episodes": episodes, "bytes": size})
        out = {
            "format": MANIFEST_FORMAT,
            "schema_version": _trajectory.SCHEMA_VERSION,
            "run": dict(run) if run is not None else dict((manifest or {}).get("run") or {}),
            "shards": shards,
        }
        data = (json.dumps(out, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        _atomic_write(self.manifest_path, lambda f: f.write(data))

    def _remove_temp_files(self) -> None:
        """Delete hidden temp files a crash left behind (ours end in ``.tmp``; other dotfiles are left alone)."""
        for directory in (self.directory, self.shards_dir):
            if directory.is_dir():
                for p in directory.iterdir():
                    if p.name.startswith(".") and p.name.endswith(_TMP_SUFFIX) and p.is_file():
                        p.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------------------- reading

    @staticmethod
    def _seq(path: Path) -> int:
        m = _SHARD_NAME.match(path.name)
        return int(m.group(1)) if m else 0

    def _listing(self) -> list[Path]:
        """Every non-hidden entry of ``shards/``, in write order (sequence number, then name)."""
        if not self.shards_dir.is_dir():
            return []
        entries = [p for p in self.shards_dir.iterdir() if not p.name.startswith(".")]
        return sorted(entries, key=lambda p: (0, self._seq(p), p.name) if _SHARD_NAME.match(p.name) else (1, 0, p.name))

    def shard_paths(self) -> list[Path]:
        """The files readers consider, in order: every non-hidden entry of ``shards/``, bad ones included."""
        return self._listing()

    def manifest(self) -> dict[str, Any] | None:
        """The manifest as stored (None if there is none yet). Metadata only: see the module docstring."""
        return self._read_manifest()

    def _inspect(self, path: Path) -> pq.FileMetaData:
        """The Parquet footer of ``path`` after checking it is one of our shards (reads no data pages)."""
        if not path.is_file():
            raise CorruptShardError(path, "not a regular file")
        try:
            metadata = pq.read_metadata(path)
            schema = metadata.schema.to_arrow_schema()
        except (pa.ArrowException, OSError, ValueError) as e:
            raise CorruptShardError(path, f"not a readable Parquet file ({e})") from e
        problem = _schema_problem(schema)
        if problem:
            raise CorruptShardError(path, problem)
        return metadata

    def _load(self, path: Path, columns: Sequence[str] | None = None) -> pa.Table:
        """Read ``columns`` (all by default; those a shard lacks are left out) and check the row versions."""
        names = set(self._inspect(path).schema.to_arrow_schema().names)
        wanted = [c for c in (columns or TRAJECTORY_SCHEMA.names) if c in names]
        if "schema_version" not in wanted:
            wanted.append("schema_version")
        try:
            table = pq.read_table(path, columns=wanted)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise CorruptShardError(path, f"unreadable data ({e})") from e
        newest = pc.max(table.column("schema_version")).as_py() if table.num_rows else None
        if newest is not None and newest > _trajectory.SCHEMA_VERSION:
            raise CorruptShardError(
                path,
                f"written with schema version {newest}; this agentenv reads up to "
                f"{_trajectory.SCHEMA_VERSION}: upgrade agentenv",
            )
        return table

    def _trajectories(self, path: Path) -> list[Trajectory]:
        """All episodes of one shard, converted before any is returned so a bad shard is skipped whole."""
        table = self._load(path)
        out = []
        for i, row in enumerate(table.to_pylist()):
            try:
                out.append(Trajectory.from_row(row))
            except (ValueError, TypeError, KeyError) as e:
                raise CorruptShardError(path, f"row {i}: {type(e).__name__}: {e}") from e
        return out

    def _each_shard(self, errors: Errors) -> Iterator[Path]:
        _check_errors(errors)
        yield from self._listing()

    def _skip_or_raise(self, error: CorruptShardError, errors: Errors) -> None:
        if errors == "raise":
            raise error
        warnings.warn(f"skipping {error}", stacklevel=4)

    def episodes(self, errors: Errors = "raise") -> Iterator[Trajectory]:
        """Every stored episode, shard by shard in write order.

        ``errors="raise"`` stops at the first bad file with :class:`CorruptShardError`; ``"skip"`` warns
        and goes on, for tools that should show what is readable rather than nothing.
        """
        for path in self._each_shard(errors):
            try:
                batch = self._trajectories(path)
            except CorruptShardError as e:
                self._skip_or_raise(e, errors)
                continue
            yield from batch


    def keys(self, errors: Errors = "raise") -> list[tuple[str, int, int, int, str]]:
        """``(trajectory_id, task_index, sample_index, attempt, status)`` per episode, for resuming.

        Reads only those columns, so it stays fast on large stores; shards of an older schema version go
        through the migrations like :meth:`episodes` does, so the keys mean the same.
        """
        out: list[tuple[str, int, int, int, str]] = []
        for path in self._each_shard(errors):
            try:
                table = self._load(path, _KEY_COLUMNS)
                if table.num_rows and pc.min(table.column("schema_version")).as_py() < (
                    _trajectory.SCHEMA_VERSION
                ):
                    out.extend(
                        (t.trajectory_id, t.task_index, t.sample_index, t.attempt, t.status)
                        for t in self._trajectories(path)
                    )
                    continue
                cols = {
                    c: table.column(c).to_pylist() if c in table.column_names else [_DEFAULTS[c]] * table.num_rows
                    for c in _KEY_COLUMNS
                }
            except CorruptShardError as e:
                self._skip_or_raise(e, errors)
                continue
            out.extend(zip(*(cols[c] for c in _KEY_COLUMNS), strict=True))
        return out

    def trajectory_ids(self, errors: Errors = "raise") -> list[str]:
        """The ids of all stored episodes, in order (duplicates kept: a retried episode appears per attempt)."""
        return [k[0] for k in self.keys(errors)]

    def __len__(self) -> int:
        """Episodes in readable shards, from the Parquet footers alone (bad files count 0, silently)."""
        total = 0
        for path in self._listing():
            with contextlib.suppress(CorruptShardError):
                total += self._inspect(path).num_rows
        return total

    def verify(self) -> list[CorruptShardError]:
        """Read every file fully and return one error per bad file, raising nothing."""
        bad = []
        for path in self._listing():
            try:
                self._trajectories(path)
            except CorruptShardError as e:
                bad.append(e)
        return bad

    def turn_samples(self, include_failed: bool = False, errors: Errors = "raise") -> Iterator[TurnSample]:
        """One :class:`TurnSample` per policy turn with completion tokens, in store order.

        Failed episodes are left out unless ``include_failed``: their rewards are not outcomes of the
        policy's actions. Turns without completion ids (expert, random or human actions) have nothing to
        train on and are skipped.
        """
        for traj in self.episodes(errors):
            if traj.status == "failed" and not include_failed:
                continue
            for turn, prompt in traj.full_prompts():
                if not turn.completion_ids:
                    continue
                n = len(turn.completion_ids)
                if len(turn.completion_mask) != n or (turn.logprobs and len(turn.logprobs) != n):
                    raise ValueError(
                        f"trajectory {traj.trajectory_id} turn {turn.index}: {n} completion ids but "
                        f"{len(turn.completion_mask)} mask values and {len(turn.logprobs)} logprobs"
                    )
                yield TurnSample(
                    trajectory_id=traj.trajectory_id,
                    group_id=traj.group_id,
                    turn=turn.index,
                    input_ids=prompt + list(turn.completion_ids),
                    loss_mask=[0] * len(prompt) + [int(m) for m in turn.completion_mask],
                    logprobs=list(turn.logprobs),
                    reward=turn.reward,
                    episode_reward=traj.reward,
                    anchor_key=turn.anchor_key,
                    prompt_len=len(prompt),
                )
