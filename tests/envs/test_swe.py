"""The SWE environment on real bwrap sandboxes: every bundled task fails before and passes after its
reference patch, the expert resolves each through the editor tool, the editor and bash tools behave, and
nothing an agent plants in the repository runs on the host (reliability I11, B12, B13)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agentenv.envs.swe import patches
from agentenv.envs.swe.env import SweEnv, tool_call
from agentenv.envs.swe.grading import grade
from agentenv.envs.swe.tasks import bundled_tasks, load_instances

TASKS = bundled_tasks()


@pytest.fixture(scope="module")
def env():
    env = SweEnv(pool_size=2)
    yield env
    env.close()


def last_text(obs) -> str:  # type: ignore[no-untyped-def]
    return obs["messages"][-1]["content"]


def test_the_task_set_is_what_the_issue_asks_for():
    assert len(TASKS) >= 24 and len({t.repo for t in TASKS}) >= 3
    assert len({t.instance_id for t in TASKS}) == len(TASKS)
    for task in TASKS:
        assert task.fail_to_pass and task.pass_to_pass and task.problem_statement.strip()
        assert all(p.startswith("tests/") for p in patches.touched_paths(task.test_patch))
        assert not any(p.startswith("tests/") for p in patches.touched_paths(task.patch))


@pytest.mark.parametrize("task", TASKS, ids=[t.instance_id for t in TASKS])
def test_every_task_fails_before_and_the_expert_fixes_it_through_the_editor(env, task):
    env.reset(options={"instance_id": task.instance_id})
    before = grade(task.workdir, task.fail_to_pass, task.pass_to_pass, "", task.test_patch, env._fresh_base,
                   env=env.env_vars)
    assert before.applied and not before.resolved
    assert not any(before.fail_to_pass.values()), before.fail_to_pass
    assert all(before.pass_to_pass.values())
    for _ in range(10):
        action = env.expert_action()
        assert action is not None
        name = json.loads(action.removeprefix("<tool_call>").removesuffix("</tool_call>"))["name"]
        assert name in ("str_replace_editor", "submit")
        obs, reward, terminated, _, info = env.step(action)
        if terminated:
            break
    assert terminated and reward == 1.0 and info["won"], last_text(obs)
    assert all(info["verdict"]["fail_to_pass"].values())


def test_editor_commands_and_errors(env):
    env.reset(options={"instance_id": "textkit-001"})
    root = env.task.workdir

    def edit(**arguments):  # type: ignore[no-untyped-def]
        return last_text(env.step(tool_call("str_replace_editor", **arguments))[0])

    assert "1\t" in edit(command="view", path="README.md")
    assert "textkit/" in edit(command="view", path=root)
    assert "already exists" in edit(command="create", path="README.md", file_text="x")
    assert "File created" in edit(command="create", path="notes.txt", file_text="one\ntwo\nthree")
    assert "File created" in edit(command="create", path="dup.txt", file_text="a\na\n")
    assert "occurs 2 times" in edit(command="str_replace", path="dup.txt", old_str="a", new_str="b")
    assert "not found" in edit(command="str_replace", path="notes.txt", old_str="four", new_str="4")
    assert "Edited" in edit(command="str_replace", path="notes.txt", old_str="two", new_str="2")
    assert "Inserted" in edit(command="insert", path="notes.txt", insert_line=1, new_str="one and a half")
    assert env.sandbox.read_file(f"{root}/notes.txt") == b"one\none and a half\n2\nthree"
    assert "Undid" in edit(command="undo_edit", path="notes.txt")
    assert "Undid" in edit(command="undo_edit", path="notes.txt")
    assert env.sandbox.read_file(f"{root}/notes.txt") == b"one\ntwo\nthree"
    assert "outside the repository" in edit(command="view", path="/etc/passwd")
    assert "view_range" in edit(command="view", path="README.md", view_range=[5, 1])
    env.step(tool_call("bash", command="ln -s /etc/hostname link.txt"))
    assert "Error" in edit(command="view", path="link.txt")
    assert "must be one of" in edit(command="delete", path="notes.txt")  # the schema refuses it


@pytest.mark.parametrize("command", ["less README.md", "git log", "python", "cat", "vi README.md",
                                     "read x; echo got-$x", "echo 'unterminated", "exit 3", "kill -9 $$",
                                     "PS1='>>> '; PROMPT_COMMAND='exit'; echo set"])
def test_b12_b13_shell_traps_and_interactive_programs_never_hang(env, command):
    env.reset(options={"instance_id": "intervals-001"})
    obs, *_ = env.step(tool_call("bash", command=command, timeout=5))
    assert "wall time limit" not in last_text(obs)
    if command.startswith("vi "):
        assert "interactive" in last_text(obs)
    after, *_ = env.step(tool_call("bash", command="echo still-usable"))
    assert "still-usable" in last_text(after)


def test_b03_a_hung_command_hits_its_deadline_and_the_next_one_works(env):
    env.reset(options={"instance_id": "intervals-001"})
    obs, *_ = env.step(tool_call("bash", command="trap '' INT TERM; sleep 1000", timeout=1))
    assert "wall time limit" in last_text(obs)
    assert "ok" in last_text(env.step(tool_call("bash", command="echo ok"))[0])


def test_i11_planted_hooks_and_conftest_never_run_on_the_host(env, tmp_path):
    marker = Path.home() / f".agentenv-i11-{os.getpid()}"
    env.reset(options={"instance_id": "textkit-001"})
    payload = f"touch {marker}"
    env.step(tool_call("bash", command=(
        f"git config core.fsmonitor '{payload}'; git config core.hooksPath .githooks; mkdir -p .githooks; "
        f"printf '#!/bin/sh\\n{payload}\\n' > .githooks/pre-commit; chmod +x .githooks/pre-commit; "
        f"printf '#!/bin/sh\\n{payload}\\n' > .git/hooks/post-checkout; chmod +x .git/hooks/post-checkout")))
    conftest = f"import pathlib\ntry:\n    pathlib.Path({str(marker)!r}).touch()\nexcept OSError:\n    pass\n"
    env.step(tool_call("str_replace_editor", command="create", path="conftest.py", file_text=conftest))
    _, _, terminated, _, info = env.step(tool_call("submit"))
    assert terminated and "conftest.py" in info["diff"]  # the submission was taken and graded
    assert not marker.exists()
    marker.unlink(missing_ok=True)


def test_a_submission_that_does_not_apply_or_breaks_tests_scores_zero(env):
    env.reset(options={"instance_id": "minicalc-001"})
    env.step(tool_call("bash", command="echo 'raise SystemExit(1)' >> minicalc/__init__.py"))
    _, reward, terminated, _, info = env.step(tool_call("submit"))
    assert terminated and reward == 0.0 and not info["won"]
    assert not all(info["verdict"]["pass_to_pass"].values())


def test_swebench_instance_files_load(tmp_path):
    task = TASKS[0]
    record = {"instance_id": "owner__project-1234", "repo": "owner/project", "base_commit": "abc123",
              "problem_statement": "x", "patch": task.patch, "test_patch": task.test_patch,
              "FAIL_TO_PASS": json.dumps(list(task.fail_to_pass)), "PASS_TO_PASS": json.dumps(["t::a"])}
    path = tmp_path / "instances.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (loaded,) = load_instances(path)
    assert loaded.image == "swebench/sweb.eval.x86_64.owner_1776_project-1234:latest"
    assert loaded.fail_to_pass == task.fail_to_pass and loaded.pass_to_pass == ("t::a",)
    assert loaded.workdir == "/testbed" and loaded.base_commit == "abc123" and not loaded.bundled
    json_path = tmp_path / "instances.json"
    json_path.write_text(json.dumps([{**record, "image_name": "local/img:1"}]))
    assert load_instances(json_path)[0].image == "local/img:1"
    with pytest.raises(ValueError, match="lacks"):
        from agentenv.envs.swe.tasks import task_from_record

        task_from_record({"instance_id": "x"})


def test_the_docker_backend_resolves_a_task_too():
    if not os.environ.get("AGENTENV_DOCKER_HOST") and os.environ.get("AGENTENV_REQUIRE_DOCKER") != "1":
        pytest.skip("no Docker engine (scripts/test.sh starts podman)")
    env = SweEnv(sandbox="docker", repos=["minicalc"])
    try:
        env.reset(seed=0)
        assert env.sandbox.backend == "docker"
        for _ in range(10):
            *_, terminated, _, info = env.step(env.expert_action())
            if terminated:
                break
        assert info["won"]
    finally:
        env.close()
