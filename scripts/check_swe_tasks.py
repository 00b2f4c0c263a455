"""Check the SWE task set in envs/swe/tasks/ (stdlib only).

For every task: copy repos/<repo> to a temporary folder, ``git init`` it, apply the task's
``patch`` in reverse (the buggy base), apply its ``test_patch``, and run pytest on the
FAIL_TO_PASS tests (each must fail) and the PASS_TO_PASS tests (all must pass); then apply
``patch`` forward and check that every FAIL_TO_PASS and PASS_TO_PASS test passes. Before the
tasks, each repository's own test suite is run as-is (the fixed state must be green).

    .venv/bin/python scripts/check_swe_tasks.py [--task ID] [--tasks-dir DIR] [--python EXE]

Prints one line per repository and per task, then a summary; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TASKS_DIR = ROOT / "envs" / "swe" / "tasks"
REQUIRED_FIELDS = {
    "instance_id": str,
    "repo": str,
    "problem_statement": str,
    "patch": str,
    "test_patch": str,
    "FAIL_TO_PASS": list,
    "PASS_TO_PASS": list,
    "difficulty": str,
    "created_by": str,
}
DIFFICULTIES = {"easy", "medium", "hard"}
PYTEST_TIMEOUT_S = 300

# A pytest plugin that records each test's outcome by node id, so results never depend on
# parsing pytest's terminal output (node ids may contain spaces or " - ").
REPORT_PLUGIN = """
import json
import os

_outcomes = {}


def pytest_runtest_logreport(report):
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped:
        _outcomes.setdefault(report.nodeid, "skipped")
    elif report.when == "call":
        _outcomes.setdefault(report.nodeid, "passed")


def pytest_collectreport(report):
    if report.failed:
        _outcomes[report.nodeid or "<collection>"] = "failed"


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["SWE_CHECK_REPORT"], "w") as f:
        json.dump(_outcomes, f)
"""

_DIFF_PATH = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.MULTILINE)


class CheckError(Exception):
    """A task (or repository) does not behave as its record says."""


def patched_files(patch: str) -> list[str]:
    """The repository-relative paths a unified git diff touches."""
    files = []
    for a, b in _DIFF_PATH.findall(patch):
        files += [a, b] if a != b else [a]
    return files


def load_tasks(tasks_dir: Path) -> list[dict]:
    tasks = []
    for path in sorted(tasks_dir.glob("*.jsonl")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            record["_source"] = f"{path.name}:{lineno}"
            tasks.append(record)
    return tasks


def validate_record(task: dict, tasks_dir: Path) -> None:
    for field, kind in REQUIRED_FIELDS.items():
        if not isinstance(task.get(field), kind):
            raise CheckError(f"field {field!r} missing or not a {kind.__name__}")
    if task["difficulty"] not in DIFFICULTIES:
        raise CheckError(f"difficulty {task['difficulty']!r} not one of {sorted(DIFFICULTIES)}")
    if not task["_source"].startswith(f"{task['repo']}.jsonl:"):
        raise CheckError(f"repo {task['repo']!r} does not match file {task['_source']}")
    if not (tasks_dir / "repos" / task["repo"]).is_dir():
        raise CheckError(f"no repository folder repos/{task['repo']}")
    if not task["FAIL_TO_PASS"]:
        raise CheckError("FAIL_TO_PASS is empty")
    if set(task["FAIL_TO_PASS"]) & set(task["PASS_TO_PASS"]):
        raise CheckError("a test is listed in both FAIL_TO_PASS and PASS_TO_PASS")
    source_files = patched_files(task["patch"])
    test_files = patched_files(task["test_patch"])
    if not source_files or not test_files:
        raise CheckError("patch or test_patch touches no file")
    if bad := [f for f in source_files if f.startswith("tests/")]:
        raise CheckError(f"patch touches test files: {bad}")
    if bad := [f for f in test_files if not f.startswith("tests/")]:
        raise CheckError(f"test_patch touches files outside tests/: {bad}")


def git(cwd: Path, *args: str, stdin: str | None = None) -> None:
    result = subprocess.run(["git", *args], cwd=cwd, input=stdin, text=True, capture_output=True)
    if result.returncode != 0:
        raise CheckError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")


def run_pytest(python: str, cwd: Path, plugin_dir: Path, ids: list[str]) -> tuple[int, dict[str, str], str]:
    """Run pytest on ``ids`` (or the whole suite if empty); return (exit code, outcomes, output tail)."""
    report = plugin_dir / f"report-{time.monotonic_ns()}.json"
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(plugin_dir),
        PYTHONDONTWRITEBYTECODE="1",
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",  # only pytest's own plugins: hermetic across environments
        SWE_CHECK_REPORT=str(report),
    )
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "_swe_check_report", *ids]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=PYTEST_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise CheckError(f"pytest timed out after {PYTEST_TIMEOUT_S}s") from exc
    outcomes = json.loads(report.read_text()) if report.exists() else {}
    tail = (proc.stdout + proc.stderr)[-1500:]
    return proc.returncode, outcomes, tail


def prepare(tasks_dir: Path, repo: str, work: Path) -> Path:
    dest = work / repo
    shutil.copytree(
        tasks_dir / "repos" / repo, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")
    )
    git(dest, "init", "-q")
    return dest


def check_repo(tasks_dir: Path, repo: str, python: str, plugin_dir: Path) -> str:
    with tempfile.TemporaryDirectory(prefix=f"swe-{repo}-") as tmp:
        dest = prepare(tasks_dir, repo, Path(tmp))
        started = time.monotonic()
        rc, outcomes, tail = run_pytest(python, dest, plugin_dir, [])
        elapsed = time.monotonic() - started
    passed = sum(v == "passed" for v in outcomes.values())
    if rc != 0 or passed == 0:
        raise CheckError(f"own suite fails (exit {rc}):\n{tail}")
    return f"{passed} tests pass in {elapsed:.1f}s"


def check_task(task: dict, tasks_dir: Path, python: str, plugin_dir: Path) -> str:
    validate_record(task, tasks_dir)
    f2p, p2p = task["FAIL_TO_PASS"], task["PASS_TO_PASS"]
    with tempfile.TemporaryDirectory(prefix=f"swe-{task['instance_id']}-") as tmp:
        repo = prepare(tasks_dir, task["repo"], Path(tmp))
        git(repo, "apply", "-R", "-", stdin=task["patch"])
        git(repo, "apply", "-", stdin=task["test_patch"])

        _, outcomes, tail = run_pytest(python, repo, plugin_dir, f2p)
        if passing := [t for t in f2p if outcomes.get(t) == "passed"]:
            raise CheckError(f"FAIL_TO_PASS tests pass on the buggy base: {passing}")
        rc, outcomes, tail = run_pytest(python, repo, plugin_dir, p2p)
        broken = [t for t in p2p if outcomes.get(t) != "passed"]
        if rc != 0 or broken:
            raise CheckError(f"PASS_TO_PASS tests fail on the buggy base: {broken[:5]}\n{tail}")

        git(repo, "apply", "-", stdin=task["patch"])
        rc, outcomes, tail = run_pytest(python, repo, plugin_dir, f2p + p2p)
        broken = [t for t in f2p + p2p if outcomes.get(t) != "passed"]
        if rc != 0 or broken:
            raise CheckError(f"tests fail after the fix: {broken[:5]}\n{tail}")
    return f"F2P {len(f2p)} fail->pass, P2P {len(p2p)} pass"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", help="check only this instance_id (repeatable)")
    parser.add_argument("--tasks-dir", type=Path, default=DEFAULT_TASKS_DIR)
    parser.add_argument("--python", default=sys.executable, help="interpreter with pytest (default: this one)")
    args = parser.parse_args(argv)

    tasks = load_tasks(args.tasks_dir)
    ids = [t.get("instance_id") for t in tasks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if args.task:
        unknown = sorted(set(args.task) - set(ids))
        if unknown:
            print(f"unknown task ids: {unknown}")
            return 1
        tasks = [t for t in tasks if t["instance_id"] in args.task]
    if not tasks:
        print(f"no tasks found in {args.tasks_dir}")
        return 1

    failures = 0
    if duplicates:
        print(f"FAIL duplicate instance ids: {duplicates}")
        failures += 1
    with tempfile.TemporaryDirectory(prefix="swe-check-") as plugin_tmp:
        plugin_dir = Path(plugin_tmp)
        (plugin_dir / "_swe_check_report.py").write_text(REPORT_PLUGIN)

        repos = sorted({t.get("repo", "?") for t in tasks})
        for repo in repos:
            try:
                print(f"ok   repo {repo}: {check_repo(args.tasks_dir, repo, args.python, plugin_dir)}", flush=True)
            except (CheckError, OSError) as exc:
                failures += 1
                print(f"FAIL repo {repo}: {exc}", flush=True)

        passed = 0
        for task in tasks:
            name = f"{task.get('instance_id', task['_source'])} ({task.get('difficulty', '?')})"
            try:
                detail = check_task(task, args.tasks_dir, args.python, plugin_dir)
            except (CheckError, OSError) as exc:
                failures += 1
                print(f"FAIL {name}: {exc}", flush=True)
            else:
                passed += 1
                print(f"ok   {name}: {detail}", flush=True)

    status = "OK" if failures == 0 else "FAILED"
    print(f"{status}: {passed}/{len(tasks)} tasks pass over {len(repos)} repos ({failures} failure(s))")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
