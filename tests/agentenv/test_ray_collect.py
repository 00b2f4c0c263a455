"""Collection on a real local Ray cluster: a head and a second node started with ``ray start``, in a private
network namespace (Ray's traffic stays on loopback), driven by ``ray_scenarios.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agentenv.collector import CollectConfig, Collector
from agentenv.ray_local import private_network_command
from agentenv.testing import CountdownEnv

pytest.importorskip("ray", reason="collection on Ray needs the ray extra (pip install -e '.[ray]')")

SCENARIOS = Path(__file__).with_name("ray_scenarios.py")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("ray")
    done = subprocess.run(private_network_command([sys.executable, str(SCENARIOS), "all", str(work)]),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def final_attempts(episodes: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    latest: dict[tuple[int, int], dict[str, Any]] = {}
    for e in episodes:
        key = (e["task"], e["sample"])
        if key not in latest or e["attempt"] > latest[key]["attempt"]:
            latest[key] = e
    return latest


@pytest.mark.integration
def test_an_env_that_needs_a_custom_resource_runs_only_where_a_node_offers_it(report):
    placed = report["placement"]
    assert report["nodes"] == 2 and placed["workers"] == 2
    assert len(placed["episodes"]) == 12 and all(e["status"] == "ok" for e in placed["episodes"])
    assert {e["node"] for e in placed["episodes"]} == set(placed["widget_nodes"])
    error = report["missing_resource"]["error"]
    assert error and "nothing_offers_this" in error and "ray start --resources" in error


@pytest.mark.integration
def test_a_killed_worker_fails_its_episodes_with_the_reason_and_the_retries_finish_the_run(report):
    run = report["worker_killed"]
    episodes = run["episodes"]
    lost = [e for e in episodes if e["status"] == "failed"]
    assert run["killed"] and run["lost"] == len(lost) >= 1
    assert run["killed"]["found_by_marker"]  # agentenv.testing.killers.ray_worker_pids finds the worker
    assert all(e["cause"] == "worker_lost" and f"pid {run['killed']['pid']}" in e["error"] for e in lost)
    assert len({e["id"] for e in episodes}) == len(episodes)  # no duplicates
    final = final_attempts(episodes)
    assert len(final) == 24 and all(e["status"] == "ok" for e in final.values())
    assert len({e["node"] for e in episodes if e["status"] == "ok"}) == 2  # spread over both nodes
    assert run["ledger"]["ok"], run["ledger"]["report"]
    pids = [w["pid"] for w in run["started"]]
    assert len(pids) == 3 and pids.index(run["killed"]["pid"]) < 2  # the killed worker was replaced


@pytest.mark.integration
def test_a_dead_node_fails_its_episodes_and_its_worker_starts_again_elsewhere(report):
    run = report["node_killed"]
    episodes = run["episodes"]
    assert run["killed"]["pids"], "the second node was never killed"
    lost = [e for e in episodes if e["status"] == "failed"]
    second = {w["node"] for w in run["started"][:2]} - {run["head"]}
    assert lost and all(e["cause"] == "worker_lost" and e["node"] in second for e in lost)
    assert run["started"][-1]["node"] == run["head"] and len(run["started"]) == 3
    assert run["ledger"]["ok"], run["ledger"]["report"]
    final = final_attempts(episodes)
    assert len(final) == 10 and all(e["status"] == "ok" for e in final.values())


@pytest.mark.integration
def test_a_killed_driver_resumes_without_duplicates(report):
    run = report["driver_killed"]
    episodes = run["episodes"]
    assert run["committed_before_kill"] >= 1 and run["second"]["skipped"] >= run["committed_before_kill"]
    assert run["second"]["skipped"] + run["second"]["episodes"] == 20
    assert len(episodes) == 20 and len({e["id"] for e in episodes}) == 20
    assert Counter(e["status"] for e in episodes) == {"ok": 20}
    assert run["ledger"]["ok"], run["ledger"]["report"]


@pytest.mark.integration
def test_kept_workers_serve_the_next_collection_with_its_own_seeds(report):
    first, second = report["kept_workers"]["runs"]
    assert first["pids"] == second["pids"] and len(first["pids"]) == 2
    assert first["ok"] == second["ok"] == 4
    assert first["seeds"] == [0, 1, 2, 3] and second["seeds"] == [1000, 1001, 1002, 1003]
    assert report["kept_workers"]["slots_after_shutdown"] == 0


@pytest.mark.integration
def test_training_collects_on_kept_ray_workers_that_reach_the_policy_server(report):
    run = report["training"]
    assert run["versions"] == [0, 1, 2] and run["rows"][1:] == [4, 4]
    assert run["episodes"] == 8 and run["failed"] == 0 and len(run["nodes"]) == 2
    assert run["turn_versions"] == [0, 1]  # step 2's episodes were sampled by the pushed weights
    assert run["started"] == 2  # kept through the steps and the evaluations


@pytest.mark.integration
def test_a_tree_rollout_ships_snapshots_to_the_workers_that_play_the_forks(report):
    run = report["tree"]
    assert run["clone_modes"] == ["snapshot"] and run["tree_ids"] == run["episodes"]
    assert run["forks"] == 2 * run["roots_that_forked"] >= 2
    assert run["snapshots_sent"] == run["forks"] and run["prefix_matches"] == run["forks"]
    assert run["groups"] == [3, 3, 3, 3]  # the group budget, exactly


@pytest.mark.integration
def test_the_command_line_collects_a_registered_env_on_the_cluster(report):
    run = report["command_line"]
    assert run["returncode"] == 0, run["stderr"]
    assert len(run["episodes"]) == 8 and all(e["node"] for e in run["episodes"])


def test_without_ray_nothing_imports_it(tmp_path):
    code = ("import sys; from agentenv.cli import main\n"
            "try:\n"
            "    main(['collect', 'agentenv/GuessNumber-v0', '-o', sys.argv[1], '-n', '2', '--progress', 'off'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\nprint('clean')")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "clean" in done.stdout, done.stderr[-2000:]


def test_a_policy_that_cannot_travel_is_a_clear_error_before_ray_starts():
    import threading

    from agentenv.ray_collect import RayEpisodes, RayOptions
    from agentenv.testing import ScriptedPolicy, expert_text

    policy = ScriptedPolicy(expert_text)
    policy.lock = threading.Lock()  # type: ignore[attr-defined]  # like a model held in this process
    collector = Collector(CollectConfig("countdown", progress="off"), policy, env_factory=CountdownEnv,
                          remote=RayEpisodes(RayOptions("local")))
    with pytest.raises(ValueError, match="serve-policy"):
        collector.run()
    import ray

    assert not ray.is_initialized()


def test_options_are_checked():
    from agentenv.ray_collect import RayOptions

    with pytest.raises(ValueError, match="workers"):
        RayOptions(workers=0)
    with pytest.raises(ValueError, match="on_turn"):
        Collector(CollectConfig("countdown"), None, remote=object(),  # type: ignore[arg-type]
                  on_turn=lambda t, turn: None)
