"""The trajectory store: atomic shards, round trips, plain-Parquet readers, damage isolation, resume checks."""

from __future__ import annotations

import dataclasses
import json
import threading
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agentenv import trajectory as trajectory_module
from agentenv.store import (
    TRAJECTORY_SCHEMA,
    CorruptShardError,
    StoreMismatchError,
    TrajectoryStore,
    TurnSample,
)
from agentenv.trajectory import SCHEMA_VERSION, Trajectory, Turn


def full_trajectory(tid: str = "t000001-s002") -> Trajectory:
    """A trajectory with every field away from its default (checked by the round-trip test)."""
    first = Turn(
        index=0,
        observation=[{"role": "user", "content": "Solve: 3 + 4 ✓"}],
        action="<tool>add(3, 4)</tool>",
        prompt_ids=[101, 102, 103],
        prompt_offset=0,
        completion_ids=[7, 8, 9],
        completion_mask=[1, 1, 0],
        logprobs=[-0.5, -0.25, -1.5],
        top_ids=[[7, 1], [8, 2], [9, 3]],
        top_logprobs=[[-0.5, -1.0], [-0.25, -2.0], [-1.5, -1.75]],
        entropies=[0.7, 0.1, 1.2],
        entropy_kind="topk", token_source="sampled",
        finish_reason="stop",
        tool_calls=[{"name": "add", "arguments": {"a": 3, "b": 4}}],
        action_valid=False,
        feedback=[{"role": "tool", "content": "7"}],
        reward=0.25,
        terminated=True,
        truncated=True,
        anchor_key="obs:3+4",
        admissible=["add", "sub"],
        info={"won": False, "nested": {"x": [1, 2]}},
        actor="teacher",
        teacher_action="<tool>add(4, 3)</tool>",
        teacher_completion_ids=[11, 12],
        policy_version=3,
        is_imagined=True,
        policy_seconds=0.125,
        env_seconds=0.5,
    )
    # admissible stays None here: the round trip must keep None and a list apart
    second = Turn(index=1, observation=[{"role": "tool", "content": "7"}], action="done", prompt_ids=[104],
                  prompt_offset=6, completion_ids=[13], completion_mask=[1], logprobs=[-0.1])
    return Trajectory(
        trajectory_id=tid,
        group_id="t000001",
        task_id="countdown/1",
        task_index=1,
        sample_index=2,
        seed=42,
        env_id="agentenv/TestCountdown-v0",
        env_kwargs={"difficulty": "hard", "sizes": [1, 2]},
        policy_id="scripted",
        policy_version=3,
        attempt=1,
        turns=[first, second],
        reward=1.0,
        terminated=True,
        truncated=True,
        status="failed",
        failure_cause="env_timeout",
        error="step took too long",
        tree_id="tree-1",
        parent_trajectory_id="t000001-s000",
        branch_turn=1,
        branch_token_offset=2,
        kind="branch",
        started_at=1_700_000_000.25,
        finished_at=1_700_000_010.5,
        extra={"beta": 0.1, "judge": {"verdict": "ok"}},
    )


def simple(tid: str, task: int = 0, sample: int = 0, **kw) -> Trajectory:
    """A token-less episode (as a random or expert policy records): all its lists are empty."""
    return Trajectory(trajectory_id=tid, group_id=f"g{task}", task_id=str(task), task_index=task,
                      sample_index=sample, seed=None, env_id="e", turns=[Turn(index=0, observation=[], action="a")],
                      **kw)


def ids(trajectories) -> list[str]:
    return [t.trajectory_id for t in trajectories]


def shard_files(store: TrajectoryStore) -> list[Path]:
    return sorted(store.shards_dir.glob("*.parquet"))


# ------------------------------------------------------------------------------------------ writing / reading


def test_full_trajectory_round_trips_equal_with_every_field_set(tmp_path):
    original = full_trajectory()
    for cls, objs in ((Trajectory, [original]), (Turn, original.turns)):
        for f in dataclasses.fields(cls):
            if f.name == "schema_version":
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            assert any(getattr(o, f.name) != default for o in objs), f"fixture leaves {cls.__name__}.{f.name} default"
    assert original.turns[1].admissible is None and original.turns[0].admissible == ["add", "sub"]

    store = TrajectoryStore(tmp_path)
    path = store.write([original])
    assert path is not None and path.parent == tmp_path / "shards" and path.suffix == ".parquet"
    [read] = list(TrajectoryStore(tmp_path).episodes())
    assert read == original
    assert read.turns[1].admissible is None
    assert pq.read_schema(path).equals(TRAJECTORY_SCHEMA)


def test_write_of_empty_list_is_a_noop(tmp_path):
    store = TrajectoryStore(tmp_path)
    assert store.write([]) is None
    assert not store.shards_dir.exists() and not store.manifest_path.exists()
    assert list(store.episodes()) == [] and len(store) == 0


def test_several_writes_make_several_shards_read_in_write_order(tmp_path):
    store = TrajectoryStore(tmp_path)
    batches = [[simple(f"b{b}-{i}", task=b, sample=i) for i in range(3)] for b in range(4)]
    paths = [store.write(batch) for batch in batches]
    assert [p.name[:13] for p in paths if p] == [f"shard-{i:06d}-" for i in range(1, 5)]
    assert shard_files(store) == paths
    expected = [t.trajectory_id for batch in batches for t in batch]
    assert ids(store.episodes()) == expected
    assert store.trajectory_ids() == expected
    assert len(store) == 12
    assert store.keys()[4] == ("b1-1", 1, 1, 0, "ok")
    manifest = json.loads(store.manifest_path.read_text())
    assert manifest["format"] == "agentenv-trajectories" and manifest["schema_version"] == SCHEMA_VERSION
    assert [s["file"] for s in manifest["shards"]] == [p.name for p in paths if p]
    assert [s["episodes"] for s in manifest["shards"]] == [3, 3, 3, 3]
    assert all(s["bytes"] == (store.shards_dir / s["file"]).stat().st_size for s in manifest["shards"])


def test_concurrent_writes_from_threads_each_make_one_shard(tmp_path):
    stores = [TrajectoryStore(tmp_path), TrajectoryStore(tmp_path)]  # two objects on one directory, too
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        stores[i % 2].write([simple(f"w{i}", task=i)])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = shard_files(stores[0])
    assert len(files) == 8 and len({f.name[:12] for f in files}) == 8  # distinct sequence numbers
    assert sorted(stores[0].trajectory_ids()) == sorted(f"w{i}" for i in range(8))
    manifest = json.loads(stores[0].manifest_path.read_text())
    assert sorted(s["file"] for s in manifest["shards"]) == [f.name for f in files]


def test_keys_reads_attempt_and_status(tmp_path):
    store = TrajectoryStore(tmp_path)
    store.write([simple("a", task=3, sample=1, attempt=2, status="failed"), simple("b", task=4, sample=0)])
    assert store.keys() == [("a", 3, 1, 2, "failed"), ("b", 4, 0, 0, "ok")]


# ------------------------------------------------------------------------------------------ turn samples


def tokenised(tid: str, status: str = "ok") -> Trajectory:
    turns = [
        Turn(index=0, observation=[], action="x", prompt_ids=[1, 2, 3], completion_ids=[4, 5],
             completion_mask=[1, 1], logprobs=[-0.1, -0.2], reward=0.5, anchor_key="k0"),
        # continues the context: offset 5 keeps all of turn 0's prompt and completion
        Turn(index=1, observation=[], action="y", prompt_ids=[6, 7], prompt_offset=5, completion_ids=[8],
             completion_mask=[1], logprobs=[-0.3], anchor_key="k1"),
        # an expert turn without tokens: nothing to train on
        Turn(index=2, observation=[], action="expert", prompt_ids=[9], prompt_offset=2),
        # keeps only the first two tokens of turn 2's context ([1, 2, 9])
        Turn(index=3, observation=[], action="z", prompt_ids=[10], prompt_offset=2, completion_ids=[11, 12],
             completion_mask=[1, 0], logprobs=[-0.4, -0.5], reward=-1.0, anchor_key="k3"),
    ]
    return Trajectory(trajectory_id=tid, group_id="g", task_id="t", task_index=0, sample_index=0, seed=0,
                      env_id="e", turns=turns, reward=2.0, status=status)  # type: ignore[arg-type]


def test_turn_samples_rebuild_full_prompts_and_mask_prompt_tokens(tmp_path):
    store = TrajectoryStore(tmp_path)
    store.write([tokenised("ok")])
    samples = list(store.turn_samples())
    assert [s.turn for s in samples] == [0, 1, 3]
    s0, s1, s3 = samples
    assert s0 == TurnSample("ok", "g", 0, [1, 2, 3, 4, 5], [0, 0, 0, 1, 1], [-0.1, -0.2], 0.5, 2.0, "k0", 3)
    assert s1.input_ids == [1, 2, 3, 4, 5, 6, 7, 8] and s1.loss_mask == [0] * 7 + [1]
    assert s1.prompt_len == 7 and s1.completion_ids == [8] and s1.logprobs == [-0.3]
    assert s3.input_ids == [1, 2, 10, 11, 12] and s3.loss_mask == [0, 0, 0, 1, 0]
    assert s3.reward == -1.0 and s3.episode_reward == 2.0 and s3.anchor_key == "k3"
    assert s3.input_ids[: s3.prompt_len] == tokenised("x").full_prompt_ids(3)


def test_turn_samples_skip_failed_episodes_unless_asked(tmp_path):
    store = TrajectoryStore(tmp_path)
    store.write([tokenised("bad", status="failed"), tokenised("good")])
    assert {s.trajectory_id for s in store.turn_samples()} == {"good"}
    assert [s.trajectory_id for s in store.turn_samples(include_failed=True)] == ["bad"] * 3 + ["good"] * 3


def test_turn_samples_reject_a_mask_of_the_wrong_length(tmp_path):
    traj = tokenised("m")
    traj.turns[0].completion_mask = [1]
    store = TrajectoryStore(tmp_path)
    store.write([traj])
    with pytest.raises(ValueError, match="trajectory m turn 0: 2 completion ids but 1 mask"):
        list(store.turn_samples())


# ------------------------------------------------------------------------------------------ plain readers


def mixed_store(tmp_path) -> tuple[TrajectoryStore, list[Trajectory]]:
    """Two shards, one whose lists are all empty: both must still get the same schema."""
    store = TrajectoryStore(tmp_path)
    empty = [simple("s0"), simple("s1", task=1)]
    full = [full_trajectory("f0"), tokenised("f1")]
    store.write(empty)
    store.write(full)
    schemas = [pq.read_schema(p) for p in shard_files(store)]
    assert all(s.equals(TRAJECTORY_SCHEMA) for s in schemas)
    return store, empty + full


def test_plain_pyarrow_reads_the_shards_directory(tmp_path):
    store, written = mixed_store(tmp_path)
    table = pq.read_table(store.shards_dir)
    assert table.num_rows == 4
    assert sorted(table.column("trajectory_id").to_pylist()) == sorted(ids(written))
    rows = {r["trajectory_id"]: r for r in table.to_pylist()}
    assert Trajectory.from_row(rows["f0"]) == written[2]


def test_pandas_reads_the_shards_directory(tmp_path):
    import pandas as pd

    store, written = mixed_store(tmp_path)
    df = pd.read_parquet(store.shards_dir)
    assert len(df) == 4 and sorted(df["trajectory_id"]) == sorted(ids(written))
    row = df.set_index("trajectory_id").loc["f0"]
    assert json.loads(row["extra"]) == written[2].extra
    assert list(row["turns"][0]["completion_ids"]) == [7, 8, 9]


def test_hf_datasets_loads_the_shards(tmp_path):
    import datasets

    store, written = mixed_store(tmp_path / "store")
    ds = datasets.load_dataset("parquet", data_files=str(store.shards_dir / "*.parquet"),
                               cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert ds.num_rows == 4 and sorted(ds["trajectory_id"]) == sorted(ids(written))
    rows = {r["trajectory_id"]: r for r in ds}
    assert Trajectory.from_row(rows["f0"]) == written[2]
    assert Trajectory.from_row(rows["s0"]) == written[0]


# ------------------------------------------------------------------------------------------ damage


def garbage(store: TrajectoryStore) -> Path:
    path = store.shards_dir / "shard-000002-deadbeef.parquet"
    path.write_bytes(b"PAR1 this is not parquet at all " * 10)
    return path


def truncated(store: TrajectoryStore) -> Path:
    data = shard_files(store)[0].read_bytes()
    path = store.shards_dir / "shard-000002-0badf00d.parquet"
    path.write_bytes(data[: len(data) // 2])
    return path


def foreign(store: TrajectoryStore) -> Path:
    path = store.shards_dir / "shard-000002-f0f0f0f0.parquet"
    pq.write_table(pa.table({"text": ["hello"], "label": [1]}), path)
    return path


def stray(store: TrajectoryStore) -> Path:
    path = store.shards_dir / "README.txt"
    path.write_text("notes about this run\n")
    return path


@pytest.mark.parametrize("make_bad", [garbage, truncated, foreign, stray])
def test_bad_file_raises_naming_it_and_skip_reads_the_rest(tmp_path, make_bad):
    store = TrajectoryStore(tmp_path)
    store.write([simple("a0"), simple("a1")])
    store.write([simple("c0")])
    bad = make_bad(store)

    with pytest.raises(CorruptShardError) as info:
        list(store.episodes())
    assert info.value.path == bad and str(bad) in str(info.value) and info.value.reason in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(CorruptShardError, match=bad.name):
        store.keys()

    with pytest.warns(UserWarning, match=bad.name):
        assert ids(store.episodes(errors="skip")) == ["a0", "a1", "c0"]
    with pytest.warns(UserWarning, match=bad.name):
        assert store.trajectory_ids(errors="skip") == ["a0", "a1", "c0"]
    assert len(store) == 3
    [error] = store.verify()
    assert error.path == bad

    # writing still works, and the manifest lists data shards only
    store.write([simple("d0")])
    manifest = json.loads(store.manifest_path.read_text())
    assert bad.name not in {s["file"] for s in manifest["shards"]} and len(manifest["shards"]) == 3


def test_foreign_parquet_error_says_which_columns_are_missing(tmp_path):
    store = TrajectoryStore(tmp_path)
    store.shards_dir.mkdir(parents=True)
    bad = foreign(store)
    [error] = store.verify()
    assert "missing columns" in error.reason and "trajectory_id" in error.reason and str(bad) in str(error)


def test_corrupt_shard_error_survives_pickling(tmp_path):
    import pickle

    error = pickle.loads(pickle.dumps(CorruptShardError(tmp_path / "x.parquet", "truncated")))
    assert error.path == tmp_path / "x.parquet" and error.reason == "truncated"


def test_leftover_hidden_temp_file_is_ignored_and_removed_by_next_write(tmp_path):
    store = TrajectoryStore(tmp_path)
    store.write([simple("a")])
    leftover = store.shards_dir / ".shard-000002-12345678.parquet.abcdef12.tmp"
    leftover.write_bytes(shard_files(store)[0].read_bytes()[:100])
    manifest_leftover = tmp_path / ".manifest.json.abcdef12.tmp"
    manifest_leftover.write_text("{")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning in skip mode
        assert ids(store.episodes(errors="skip")) == ["a"]
    assert store.verify() == [] and len(store) == 1
    assert pq.read_table(store.shards_dir).num_rows == 1  # plain pyarrow skips dotfiles too

    store.write([simple("b")])
    assert not leftover.exists() and not manifest_leftover.exists()
    assert ids(store.episodes()) == ["a", "b"]


def test_shard_missing_from_manifest_is_read_and_manifest_repaired(tmp_path):
    store = TrajectoryStore(tmp_path)
    store.open_run({"env_id": "e"})
    first = store.write([simple("a")])
    second = store.write([simple("b"), simple("c")])
    assert first and second
    # a crash between the shard rename and the manifest rewrite: the manifest lacks the second shard
    manifest = json.loads(store.manifest_path.read_text())
    manifest["shards"] = [s for s in manifest["shards"] if s["file"] != second.name]
    store.manifest_path.write_text(json.dumps(manifest))

    assert ids(store.episodes()) == ["a", "b", "c"] and len(store) == 3
    third = store.write([simple("d")])
    assert third
    repaired = json.loads(store.manifest_path.read_text())
    assert [(s["file"], s["episodes"]) for s in repaired["shards"]] == [
        (first.name, 1), (second.name, 2), (third.name, 1)
    ]
    assert repaired["run"] == {"env_id": "e"}


# ------------------------------------------------------------------------------------------ resume identity


def test_open_run_records_the_run_and_accepts_a_matching_resume(tmp_path):
    store = TrajectoryStore(tmp_path)
    run = {"env_id": "e", "seed": 1, "sampling": {"temperature": 0.7}, "sizes": (1, 2), "concurrency": 4}
    store.open_run(run)
    assert json.loads(store.manifest_path.read_text())["run"]["sizes"] == [1, 2]
    store.write([simple("a")])
    # concurrency is ignored, a key missing on one side is not a conflict, tuples equal stored lists
    TrajectoryStore(tmp_path).open_run({**run, "concurrency": 16, "new_key": True})
    recorded = json.loads(store.manifest_path.read_text())["run"]
    assert recorded["concurrency"] == 16 and recorded["new_key"] is True and recorded["seed"] == 1
    assert store.trajectory_ids() == ["a"]


def test_open_run_with_a_different_run_raises_naming_directory_and_keys(tmp_path):
    store = TrajectoryStore(tmp_path)
    store.open_run({"env_id": "e", "seed": 1, "sampling": {"temperature": 0.7}})
    before = store.manifest_path.read_text()
    with pytest.raises(StoreMismatchError) as info:
        store.open_run({"env_id": "e", "seed": 2, "sampling": {"temperature": 1.0}})
    message = str(info.value)
    assert str(tmp_path) in message and "seed" in message and "sampling" in message and "env_id" not in message
    assert "another output directory" in message
    assert info.value.keys == ["sampling", "seed"] and isinstance(info.value, ValueError)
    assert store.manifest_path.read_text() == before  # the stored identity is untouched


def test_open_run_ignores_only_the_listed_keys(tmp_path):
    store = TrajectoryStore(tmp_path)
    store.open_run({"seed": 1, "concurrency": 4})
    store.open_run({"seed": 2, "concurrency": 4}, ignore=("seed",))
    with pytest.raises(StoreMismatchError, match="concurrency"):
        store.open_run({"seed": 1, "concurrency": 8}, ignore=())


def test_open_run_refuses_a_foreign_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not an agentenv trajectory manifest"):
        TrajectoryStore(tmp_path).open_run({"seed": 1})


# ------------------------------------------------------------------------------------------ schema versions


def test_row_from_a_newer_schema_version_gives_a_clear_error(tmp_path):
    store = TrajectoryStore(tmp_path)
    store.write([simple("old")])
    newer = store.write([dataclasses.replace(simple("new"), schema_version=SCHEMA_VERSION + 1)])
    assert newer
    pattern = rf"{newer.name}.*schema version {SCHEMA_VERSION + 1}.*reads up to {SCHEMA_VERSION}: upgrade agentenv"
    with pytest.raises(CorruptShardError, match=pattern):
        list(store.episodes())
    with pytest.raises(CorruptShardError, match="upgrade agentenv"):
        store.keys()
    with pytest.warns(UserWarning, match="upgrade agentenv"):
        assert ids(store.episodes(errors="skip")) == ["old"]


def test_registered_migration_upgrades_old_rows(tmp_path, monkeypatch):
    store = TrajectoryStore(tmp_path)
    store.write([simple("a", attempt=1), simple("b")])
    seen = []

    def v1_to_v2(row):
        seen.append(row["schema_version"])
        return {**row, "policy_id": "legacy:" + row["policy_id"], "attempt": row["attempt"] + 10}

    monkeypatch.setattr(trajectory_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(trajectory_module.MIGRATIONS, SCHEMA_VERSION, v1_to_v2)
    episodes = list(store.episodes())
    assert [t.policy_id for t in episodes] == ["legacy:", "legacy:"]
    assert [t.schema_version for t in episodes] == [SCHEMA_VERSION + 1] * 2
    assert seen == [SCHEMA_VERSION, SCHEMA_VERSION]
    # keys() of old shards go through the migrations too, so resume sees the upgraded meaning
    keys = store.keys()
    assert [k[3] for k in keys] == [11, 10]
    # new writes record the new version; both shards read together
    store.write([episodes[0]])
    assert json.loads(store.manifest_path.read_text())["schema_version"] == SCHEMA_VERSION + 1
    assert ids(store.episodes()) == ["a", "b", "a"]
