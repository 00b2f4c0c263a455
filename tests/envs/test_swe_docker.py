"""A SWE-bench-style instance end to end on the docker backend: an image that holds the repository at
/testbed at its base commit (built here from a bundled task, as SWE-bench's images are built from
theirs), loaded from an instance file, solved by the expert and graded in a fresh container."""

from __future__ import annotations

import json
import os

import pytest

from agentenv.envs.swe.env import SweEnv
from agentenv.envs.swe.grading import grade
from agentenv.envs.swe.tasks import base_archive, bundled_tasks, load_instances
from agentenv.sandboxes import SandboxUnavailable
from agentenv.sandboxes.docker_engine import DEFAULT_IMAGE, LABEL, connect, python_binds, remove_container

pytestmark = pytest.mark.integration

TASK = bundled_tasks()[3]
IMAGE = f"agentenv-swebench-test:{TASK.instance_id.lower()}"
DOCKER_OPTIONS = {"host_binds": True, "python": None}  # the test image runs the host's Python, bound


@pytest.fixture(scope="module")
def instance_file(tmp_path_factory):
    try:
        client = connect()
    except SandboxUnavailable as exc:
        if os.environ.get("AGENTENV_REQUIRE_DOCKER") == "1":
            raise
        pytest.skip(f"no Docker engine: {exc}")
    image = client.images.get(DEFAULT_IMAGE)
    binds = {p: {"bind": p, "mode": "ro"} for p in [*image.labels["agentenv.host_binds"].split(), *python_binds()]}
    builder = client.containers.run(image.id, ["/usr/bin/sleep", "infinity"], detach=True, network_mode="none",
                                    volumes=binds, user="0:0", labels={LABEL: "test-build"})
    try:
        builder.exec_run(["mkdir", "-p", "/testbed"])
        builder.put_archive("/testbed", base_archive(TASK.instance_id))
        git = "git -c user.name=swe -c user.email=swe@localhost"
        done = builder.exec_run(["sh", "-c", f"cd /testbed && {git} init -q && {git} add -A && {git} commit -qm base "
                                             "&& git rev-parse HEAD"])
        assert done.exit_code == 0, done.output
        base_commit = done.output.decode().strip().splitlines()[-1]
        builder.commit(repository=IMAGE.split(":")[0], tag=IMAGE.split(":")[1])
    finally:
        remove_container(client, builder.id)
    record = {"instance_id": TASK.instance_id, "repo": f"agentenv/{TASK.repo}", "base_commit": base_commit,
              "problem_statement": TASK.problem_statement, "patch": TASK.patch, "test_patch": TASK.test_patch,
              "FAIL_TO_PASS": json.dumps(list(TASK.fail_to_pass)), "PASS_TO_PASS": json.dumps(list(TASK.pass_to_pass)),
              "image_name": IMAGE}
    path = tmp_path_factory.mktemp("swebench") / "instances.jsonl"
    path.write_text(json.dumps(record) + "\n")
    yield path
    client.images.remove(IMAGE, force=True)


def test_an_instance_image_is_solved_and_graded_in_containers(instance_file):
    (task,) = load_instances(instance_file)
    env = SweEnv(tasks=[task], docker_options=DOCKER_OPTIONS)
    try:
        env.reset(options={"instance_id": task.instance_id})
        assert env.sandbox.backend == "docker" and env.task.workdir == "/testbed"
        head = env.sandbox.exec("git rev-parse HEAD", cwd="/testbed", env=env.env_vars).stdout.strip()
        assert head == task.base_commit
        before = grade(task.workdir, task.fail_to_pass, task.pass_to_pass, "", task.test_patch, env._fresh_base,
                       env=env.env_vars)
        assert not before.resolved and not any(before.fail_to_pass.values())
        for _ in range(10):
            *_, terminated, _, info = env.step(env.expert_action())
            if terminated:
                break
        assert info["won"] and info["verdict"]["resolved"]
    finally:
        env.close()
