"""SWE-bench's verdict on a submission: in a fresh sandbox, the base plus the submitted diff plus the
task's test patch; resolved when every FAIL_TO_PASS test passes and every PASS_TO_PASS test still does.

Everything runs inside the fresh sandbox, git and pytest included: a `conftest.py`, a git hook or an
fsmonitor setting the agent planted can only ever run behind the sandbox's walls (reliability I11).
Test outcomes come from a small pytest plugin that records each node id's outcome as JSON, so the
verdict never depends on parsing pytest's text output.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from agentenv.sandboxes import Sandbox

REPORT_PLUGIN = '''
import json, os
_outcomes = {}
def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _outcomes[report.nodeid] = report.outcome
def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["AGENTENV_TEST_REPORT"], "w") as handle:
        json.dump(_outcomes, handle)
'''
PLUGIN_DIR = "/tmp/agentenv-grader"
REPORT_PATH = f"{PLUGIN_DIR}/report.json"
SAFE_GIT = "git -c core.fsmonitor= -c core.hooksPath=/dev/null -c safe.directory=*"


@dataclass
class TestRun:
    outcomes: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    output: str = ""
    limit: str | None = None

    def passed(self, node_id: str) -> bool:
        return self.outcomes.get(node_id) == "passed"


@dataclass
class Verdict:
    resolved: bool
    fail_to_pass: dict[str, bool]
    pass_to_pass: dict[str, bool]
    applied: bool = True
    note: str = ""

    @property
    def reward(self) -> float:
        return 1.0 if self.resolved else 0.0

    def to_dict(self) -> dict:
        return {"resolved": self.resolved, "applied": self.applied, "note": self.note,
                "fail_to_pass": self.fail_to_pass, "pass_to_pass": self.pass_to_pass}


def run_tests(sandbox: Sandbox, workdir: str, node_ids: list[str] | tuple[str, ...], *, test_command: str,
              timeout: float = 300.0, env: dict[str, str] | None = None) -> TestRun:
    """Run pytest on `node_ids` (all tests when empty) inside the sandbox; outcomes by node id."""
    sandbox.write_file(f"{PLUGIN_DIR}/agentenv_report.py", REPORT_PLUGIN)
    ids = " ".join(shlex.quote(n) for n in node_ids)
    command = (f"rm -f {REPORT_PATH}; cd {shlex.quote(workdir)} && "
               f"{test_command} -q -p no:cacheprovider -p agentenv_report {ids}")
    full_env = {"PYTHONPATH": PLUGIN_DIR, "AGENTENV_TEST_REPORT": REPORT_PATH, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                **(env or {})}
    result = sandbox.exec(command, env=full_env, timeout=timeout)
    run = TestRun(exit_code=result.exit_code, output=result.stdout + result.stderr, limit=result.limit)
    try:
        run.outcomes = json.loads(sandbox.read_file(REPORT_PATH))
    except Exception:
        run.outcomes = {}
    return run


def grade(
    task_workdir: str,
    fail_to_pass: tuple[str, ...],
    pass_to_pass: tuple[str, ...],
    diff: str,
    test_patch: str,
    prepare_base: Callable[[], Sandbox],
    *,
    test_command: str = "python -m pytest",
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
) -> Verdict:
    """Apply `diff` and `test_patch` to a fresh base from `prepare_base` and run the task's tests."""
    sandbox = prepare_base()
    try:
        for name, patch in (("the submitted diff", diff), ("the test patch", test_patch)):
            if not patch.strip():
                continue
            sandbox.write_file(f"{PLUGIN_DIR}/change.diff", patch if patch.endswith("\n") else patch + "\n")
            applied = sandbox.exec(f"cd {shlex.quote(task_workdir)} && {SAFE_GIT} apply --whitespace=nowarn "
                                   f"{PLUGIN_DIR}/change.diff", env=env)
            if not applied.ok:
                note = f"{name} does not apply: {applied.stderr.strip()[:500]}"
                return Verdict(False, dict.fromkeys(fail_to_pass, False), dict.fromkeys(pass_to_pass, False),
                               applied=False, note=note)
        run = run_tests(sandbox, task_workdir, [*fail_to_pass, *pass_to_pass], test_command=test_command,
                        timeout=timeout, env=env)
        f2p = {n: run.passed(n) for n in fail_to_pass}
        p2p = {n: run.passed(n) for n in pass_to_pass}
        note = "" if run.outcomes else f"no test report (exit {run.exit_code}, limit {run.limit}): {run.output[-500:]}"
        return Verdict(all(f2p.values()) and all(p2p.values()), f2p, p2p, note=note)
    finally:
        sandbox.close()
