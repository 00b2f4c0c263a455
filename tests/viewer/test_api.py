"""The viewer's JSON API over a real (tiny) training run and a damaged store, through FastAPI's TestClient."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agentenv.store import TrajectoryStore
from agentenv.trajectory import Trajectory
from agentenv.viewer import create_viewer_app, export_episode_html

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(viewer_run: Path, viewer_corrupt_store: Path) -> TestClient:
    return TestClient(create_viewer_app([viewer_run.parent, viewer_corrupt_store]))


@pytest.fixture(scope="module")
def stored(viewer_run: Path) -> dict[str, Trajectory]:
    return {t.trajectory_id: t for t in TrajectoryStore(viewer_run / "rollouts" / "step-00000").episodes()}


def _store_id(client: TestClient, split: str, run: str | None = "demo-run") -> str:
    sources = client.get("/api/sources").json()
    runs = {r["id"]: r for r in sources["runs"]}
    return next(s["id"] for s in sources["stores"] if s["split"] == split
                and (run is None or runs.get(s["run"] or "", {}).get("name") == run))


def _episodes(client: TestClient, store: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/stores/{store}/episodes", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_sources_find_both_runs_their_stores_and_a_loose_store(client: TestClient, viewer_run: Path):
    sources = client.get("/api/sources").json()
    runs = {r["name"]: r for r in sources["runs"]}
    assert set(runs) == {"demo-run", "baseline"}
    assert runs["demo-run"]["has_metrics"] and runs["demo-run"]["path"] == str(viewer_run.resolve())
    stores = {s["id"]: s for s in sources["stores"]}
    mine = [stores[i] for i in runs["demo-run"]["stores"]]
    assert sorted((s["split"], s["step"], s["episodes"]) for s in mine) == [("eval", 0, 4), ("train", 0, 22)]
    assert runs["baseline"]["stores"] == []
    loose = [s for s in stores.values() if s["run"] is None]
    assert [(s["name"], s["split"]) for s in loose] == [("damaged", "store")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", i) for i in [*stores, *runs])
    again = TestClient(create_viewer_app([viewer_run.parent, loose[0]["path"]])).get("/api/sources").json()
    assert again["stores"] == sources["stores"]  # same paths, same ids: shared links survive a restart


def test_a_folder_is_searched_a_few_levels_down_for_runs_and_stores(viewer_run: Path, tmp_path: Path):
    (tmp_path / "sweep" / "lr-1e-5").mkdir(parents=True)
    (tmp_path / "sweep" / "lr-1e-5" / "grpo").symlink_to(viewer_run)
    (tmp_path / "too" / "deep" / "for" / "it").mkdir(parents=True)
    (tmp_path / "too" / "deep" / "for" / "it" / "run").symlink_to(viewer_run)
    sources = TestClient(create_viewer_app([tmp_path])).get("/api/sources").json()
    assert [r["name"] for r in sources["runs"]] == ["sweep/lr-1e-5/grpo"]
    assert len(sources["stores"]) == 2 and sources["errors"] == []


def test_metrics_give_the_rows_and_numeric_keys_and_name_a_bad_line(client: TestClient, tmp_path: Path):
    runs = {r["name"]: r["id"] for r in client.get("/api/sources").json()["runs"]}
    body = client.get(f"/api/runs/{runs['demo-run']}/metrics").json()
    assert [r["step"] for r in body["records"]] == [1, 2, 3, 4, 5] and body["error"] is None
    for key in ("success_rate", "reward_mean", "loss", "kl", "entropy", "update_tokens_per_s", "policy_version"):
        assert key in body["keys"]
    assert client.get(f"/api/runs/{runs['baseline']}/metrics").json()["records"][-1]["step"] == 4
    run = tmp_path / "broken-run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n{"step": 3, "loss": 1.0}\n')
    broken = TestClient(create_viewer_app([run]))
    body = broken.get("/api/runs/broken-run/metrics").json()
    assert [r["step"] for r in body["records"]] == [1, 3] and "2" in body["error"]
    assert broken.get("/api/runs/nope/metrics").status_code == 404


def test_the_index_matches_the_store_and_pages_in_order(client: TestClient, stored: dict[str, Trajectory]):
    store = _store_id(client, "train")
    full = _episodes(client, store)
    assert full["total"] == len(stored) == 22 and full["errors"] == []
    for row in full["rows"]:
        t = stored[row["trajectory_id"]]
        assert row["turns"] == len(t.turns) and row["success"] == t.success and row["reward"] == t.reward
        assert row["trained_tokens"] == sum(sum(u.completion_mask) for u in t.turns) > 0
        assert row["task_type"] == t.extra["task_type"] and row["status"] == t.status
        assert (row["kind"], row["parent_trajectory_id"]) == (t.kind, t.parent_trajectory_id)
    assert any(r["trained_tokens"] < sum(len(u.completion_ids) for u in stored[r["trajectory_id"]].turns)
               for r in full["rows"])
    ids = sorted(stored)
    pages = [_episodes(client, store, sort="trajectory_id", offset=o, limit=5) for o in range(0, 25, 5)]
    assert [r["trajectory_id"] for p in pages for r in p["rows"]] == ids
    assert all(p["total"] == 22 for p in pages) and len(pages[-1]["rows"]) == 2
    down = _episodes(client, store, sort="reward", order="desc")["rows"]
    assert [r["reward"] for r in down] == sorted((t.reward for t in stored.values()), reverse=True)
    turns = _episodes(client, store, sort="turns", order="asc")["rows"]
    assert [r["turns"] for r in turns] == sorted(len(t.turns) for t in stored.values())
    assert "cannot sort" in _episodes(client, store, sort="nonsense")["errors"][0]


@pytest.mark.parametrize(("params", "keep"), [
    ({"success": "true"}, lambda t: t.success),
    ({"success": "false"}, lambda t: not t.success),
    ({"status": "failed"}, lambda t: t.status == "failed"),
    ({"failure_cause": "env_timeout"}, lambda t: t.failure_cause == "env_timeout"),
    ({"policy_version": "1"}, lambda t: t.policy_version == 1),
    ({"group": "t000004"}, lambda t: t.group_id == "t000004"),
    ({"kind": "branch"}, lambda t: t.kind == "branch"),
    ({"min_reward": "0.5"}, lambda t: t.reward >= 0.5),
    ({"max_reward": "0.5"}, lambda t: t.reward <= 0.5),
    ({"min_turns": "3"}, lambda t: len(t.turns) >= 3),
    ({"max_turns": "2"}, lambda t: len(t.turns) <= 2),
    ({"q": "S001"}, lambda t: "s001" in t.trajectory_id.lower()),
    ({"env": "agentenv/ViewerAnyReply-v0", "kind": "init"}, lambda t: t.kind == "init"),
    ({"env": "agentenv/Other-v0"}, lambda t: False),
])
def test_each_filter_keeps_exactly_the_matching_episodes(client: TestClient, stored: dict[str, Trajectory],
                                                         params: dict[str, str], keep: Any):
    body = _episodes(client, _store_id(client, "train"), **params)
    expected = sorted(i for i, t in stored.items() if keep(t))
    assert sorted(r["trajectory_id"] for r in body["rows"]) == expected and body["total"] == len(expected)
    assert 0 < len(expected) < len(stored) or params.get("env") == "agentenv/Other-v0"


def test_task_type_filter_and_facets(client: TestClient, stored: dict[str, Trajectory]):
    store = _store_id(client, "train")
    body = _episodes(client, store)
    types = sorted({t.extra["task_type"] for t in stored.values()})
    assert body["facets"]["task_type"] == types and len(types) > 1
    assert body["facets"]["kind"] == ["branch", "init"] and body["facets"]["failure_cause"] == ["env_timeout"]
    assert body["facets"]["env"] == ["agentenv/ViewerAnyReply-v0"]
    one = _episodes(client, store, task_type=types[0])
    assert {r["task_type"] for r in one["rows"]} == {types[0]}
    assert one["total"] == sum(t.extra["task_type"] == types[0] for t in stored.values())
    bad = _episodes(client, store, min_turns="many")
    assert bad["total"] == 22 and "min_turns" in bad["errors"][0]


def test_an_episode_has_its_tokens_masks_logprobs_and_decoded_text(client: TestClient,
                                                                   stored: dict[str, Trajectory],
                                                                   tiny_model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    store = _store_id(client, "train")
    first = next(t for t in stored.values() if t.turns[2].is_imagined)
    body = client.get(f"/api/stores/{store}/episodes/{first.trajectory_id}").json()
    assert body["notes"] == [] and body["success"] == first.success and body["extra"] == first.extra
    assert len(body["turns"]) == len(first.turns)
    for turn, shown in zip(first.turns, body["turns"], strict=True):
        tokens = shown["tokens"]
        assert tokens["trained_count"] == sum(turn.completion_mask)
        assert [c["id"] for c in tokens["completion"]] == turn.completion_ids
        assert [c["trained"] for c in tokens["completion"]] == [bool(m) for m in turn.completion_mask]
        assert [c["logprob"] for c in tokens["completion"]] == turn.logprobs
        assert [c["entropy"] for c in tokens["completion"]] == turn.entropies
        assert [p["id"] for p in tokens["prompt"]] == turn.prompt_ids
        assert "".join(c["text"] for c in tokens["completion"]) == tokenizer.decode(turn.completion_ids)
        assert [p["text"] for p in tokens["prompt"][:3]] == [tokenizer.decode([i]) for i in turn.prompt_ids[:3]]
        assert shown["advantage"] == round(first.reward - 0.5, 3)
    assert body["turns"][0]["images"][0].startswith("data:image/png;base64,")
    assert body["turns"][1]["teacher_action"] == "the teacher's reply"
    assert [t["is_imagined"] for t in body["turns"]] == [False, False, True]
    failed = next(t for t in stored.values() if t.status == "failed")
    body = client.get(f"/api/stores/{store}/episodes/{failed.trajectory_id}").json()
    assert body["error"] == failed.error and body["failure_cause"] == "env_timeout" and body["load_error"] is None
    assert not body["success"] and len(body["turns"]) == 1


def test_without_a_tokenizer_the_episode_shows_ids_and_says_why(tmp_path: Path, viewer_run: Path):
    store = viewer_run / "rollouts" / "step-00000"
    app = create_viewer_app([store], tokenizer=str(tmp_path / "no-such-tokenizer"))
    client = TestClient(app)
    (store_id,) = [s["id"] for s in client.get("/api/sources").json()["stores"]]
    tid = _episodes(client, store_id, limit=1)["rows"][0]["trajectory_id"]
    body = client.get(f"/api/stores/{store_id}/episodes/{tid}").json()
    assert body["notes"] and "no-such-tokenizer" in body["notes"][0]
    assert {c["text"] for t in body["turns"] for c in t["tokens"]["completion"]} == {None}
    named = client.get(f"/api/stores/{store_id}/episodes/{tid}", params={"tokenizer": str(viewer_run / "..")})
    assert named.status_code == 200 and named.json()["notes"]


def test_per_token_advantages_land_on_the_trained_tokens_in_order(client: TestClient,
                                                                 stored: dict[str, Trajectory]):
    store = _store_id(client, "train")
    branch = next(t for t in stored.values() if t.kind == "branch")
    body = client.get(f"/api/stores/{store}/episodes/{branch.trajectory_id}").json()
    shown = [c.get("advantage") for t in body["turns"] for c in t["tokens"]["completion"] if c["trained"]]
    trained = sum(sum(u.completion_mask) for u in branch.turns)
    assert shown == [round(branch.reward - 0.5 + k / 100, 3) for k in range(trained)]
    assert all("advantage" not in c for t in body["turns"] for c in t["tokens"]["completion"] if not c["trained"])


def test_a_tree_group_shows_members_and_branch_structure(client: TestClient, stored: dict[str, Trajectory]):
    store = _store_id(client, "train")
    body = client.get(f"/api/stores/{store}/groups/t000004").json()
    members = {t.trajectory_id: t for t in stored.values() if t.group_id == "t000004"}
    assert sorted(m["trajectory_id"] for m in body["members"]) == sorted(members) and len(members) == 6
    nodes = {n["id"]: n for n in body["tree"]}
    roots = [n for n in nodes.values() if n["parent"] is None]
    assert len(roots) == 2 and all(n["kind"] == "init" for n in roots)
    for node in nodes.values():
        t = members[node["id"]]
        assert node["parent"] == t.parent_trajectory_id and node["reward"] == t.reward
        kids = sorted(i for i, c in members.items() if c.parent_trajectory_id == t.trajectory_id)
        assert sorted(node["children"]) == kids
    assert sum(len(n["children"]) for n in roots) == 4
    assert {m["branch_turn"] for m in body["members"] if m["kind"] == "branch"} == {1}
    for m in body["members"]:  # per-token tree credit, shown as its mean per member
        n = sum(sum(turn.completion_mask) for turn in members[m["trajectory_id"]].turns)
        expected = sum(round(members[m["trajectory_id"]].reward - 0.5 + k / 100, 3) for k in range(n)) / n
        assert m["advantage"] == pytest.approx(expected, abs=1e-9)
    flat = client.get(f"/api/stores/{store}/groups/t000001").json()
    assert len(flat["members"]) == 4 and all(n["parent"] is None and n["children"] == [] for n in flat["tree"])


def test_the_export_is_one_self_contained_html_file(client: TestClient, stored: dict[str, Trajectory]):
    store = _store_id(client, "train")
    tid = next(iter(stored))
    response = client.get(f"/api/stores/{store}/episodes/{tid}/export")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert f'filename="{tid}.html"' in response.headers["content-disposition"]
    page = response.text
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page and "<script src" not in page
    data = json.loads(re.search(r'<script type="application/json" id="episode">(.*?)</script>', page, re.S)[1])
    assert data["trajectory_id"] == tid and len(data["turns"]) == len(stored[tid].turns)
    hostile = export_episode_html({"trajectory_id": "x", "turns": [{"action": "</script><script>alert(1)"}]})
    assert "</script><script>alert" not in hostile


def test_a_corrupt_shard_and_a_missing_column_are_reported_not_fatal(client: TestClient):
    store = _store_id(client, "store", run=None)
    body = _episodes(client, store)
    assert body["total"] == 12  # 10 from the good shard + 2 from the one lacking columns
    assert any("shard-000002-0000dead.parquet" in e for e in body["errors"])
    assert any("kind" in e and "failure_cause" in e and "0000beef" in e for e in body["errors"])
    lacking = {r["trajectory_id"] for r in body["rows"]} - {r["trajectory_id"] for r in body["rows"][:10]}
    tid = next(iter(lacking))
    detail = client.get(f"/api/stores/{store}/episodes/{tid}")
    assert detail.status_code == 200 and detail.json()["trajectory_id"] == tid
    assert client.get(f"/api/stores/{store}/groups/t000000").status_code == 200


def test_unknown_ids_are_404_with_a_message(client: TestClient):
    store = _store_id(client, "train")
    for url in ("/api/stores/nope/episodes", f"/api/stores/{store}/episodes/nope",
                f"/api/stores/{store}/episodes/nope/export", f"/api/stores/{store}/groups/nope",
                "/api/runs/nope/metrics"):
        response = client.get(url)
        assert response.status_code == 404 and "nope" in response.json()["error"], url


def test_the_page_and_static_files_are_served(client: TestClient):
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_the_view_command_serves_on_a_free_port_and_prints_the_url(viewer_run: Path):
    import subprocess
    import sys

    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "agentenv.cli", "view", str(viewer_run), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.fullmatch(r"agentenv viewer: (http://127\.0\.0\.1:\d+)/\n", line)
        assert url, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        sources = httpx.get(url[1] + "/api/sources", timeout=10).json()
        assert [r["name"] for r in sources["runs"]] == ["demo-run"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _episode(tid: str, reward: float, won: bool | None) -> Trajectory:
    from agentenv.trajectory import Turn

    info = {} if won is None else {"won": won}
    turn = Turn(index=0, observation=[{"role": "user", "content": "go"}], action="ok", completion_ids=[5, 6],
                completion_mask=[1, 0], terminated=True, reward=reward, info=info)
    return Trajectory(trajectory_id=tid, group_id="g", task_id="g", task_index=0, sample_index=0, seed=0,
                      env_id="e", turns=[turn], reward=reward, terminated=True)


def test_success_follows_the_envs_won_flag_and_a_growing_store_is_reread(tmp_path: Path):
    store = TrajectoryStore(tmp_path / "grow")
    store.write([_episode("a", 1.0, False), _episode("b", 0.5, None), _episode("c", 0.0, True)])
    client = TestClient(create_viewer_app([store.directory]))
    rows = {r["trajectory_id"]: r for r in _episodes(client, "grow")["rows"]}
    assert {k: r["success"] for k, r in rows.items()} == {t.trajectory_id: t.success for t in store.episodes()}
    assert {k: r["success"] for k, r in rows.items()} == {"a": False, "b": True, "c": True}
    assert {r["trained_tokens"] for r in rows.values()} == {1}
    store.write([_episode("d", 0.0, None)])
    assert _episodes(client, "grow")["total"] == 4
