"""The command line: each command end to end, and one-line errors (exit 2, no traceback) for bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agentenv.progress import CollectProgress
from agentenv.trajectory import Trajectory


def test_envs_lists_the_built_ins_with_their_family(cli):
    code, out, _ = cli("envs")
    assert code == 0
    assert "agentenv/Maze-v0" in out and "agentenv/GuessNumber-v0" in out and "puzzle" in out


def test_play_with_the_expert_solves_the_maze(cli):
    code, out, _ = cli("play", "agentenv/Maze-v0", "--policy", "expert", "-e", "size=3")
    assert code == 0
    assert "> Action: go" in out and "reward 1 after" in out and "solved" in out


def test_play_prints_env_text_verbatim_not_as_markup(cli):
    code, out, _ = cli("play", "agentenv/CodeInterpreter-v0", "--policy", "expert")
    assert code == 0 and "[stdout]" in out and "reward 1 after 2 turns" in out


def test_collect_show_and_resume(cli, tmp_path: Path):
    store = str(tmp_path / "store")
    argv = ("collect", "agentenv/GuessNumber-v0", "--policy", "random", "-n", "3", "-g", "2", "-k", "4",
            "--out", store, "--progress", "off")
    code, out, _ = cli(*argv)
    assert code == 0 and "episodes" in out and "6" in out
    code, out, _ = cli("show", store)
    assert code == 0 and "reward" in out and "turn 0" in out and "tokens: none recorded" in out
    code, out, _ = cli(*argv)
    assert code == 0 and "+6 already done" in out


@pytest.mark.parametrize(("argv", "message"), [
    (("play", "agentenv/Maze-v9", "--policy", "expert"), "agentenv/Maze-v0"),  # did-you-mean
    (("play", "agentenv/Maze-v0", "--policy", "wizard"), "unknown policy 'wizard'"),
    (("play", "agentenv/Maze-v0", "--policy", "expert", "-e", "size"), "KEY=VALUE"),
    (("play", "agentenv/Maze-v0", "--policy", "expert", "-e", "size=1"), "size must be at least 2"),
    (("collect", "agentenv/Maze-v0", "-n", "2"), "--out"),
    (("show", "no/such/store"), "is not a trajectory store"),
    (("collect", "agentenv/Maze-v0", "--out", "x", "--temperature", "-1"), "temperature must be >= 0"),
])
def test_bad_input_gets_one_line_and_exit_code_2(cli, argv, message):
    code, out, err = cli(*argv)
    assert code == 2
    assert message in " ".join((out + err).split())
    assert "Traceback" not in out + err


def test_progress_off_a_terminal_is_plain_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="agentenv.collect")
    with CollectProgress(total=2, mode="auto", interval=0.0) as progress:
        assert progress.mode == "log"  # pytest's stderr is not a terminal
        progress.add([Trajectory(trajectory_id="a", group_id="g", task_id="t", task_index=0, sample_index=0, seed=0,
                                 env_id="e", reward=1.0, terminated=True)])
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "collect: 2 episodes to run (0 already done)"
    assert any("1/2 episodes" in line and "success 100.0%" in line for line in lines[1:])
