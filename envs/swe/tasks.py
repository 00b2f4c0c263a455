"""SWE tasks: the bundled set (envs/swe/tasks/) and SWE-bench / SWE-Gym instance files.

Both use SWE-bench's fields (instance_id, repo, problem_statement, patch, test_patch, FAIL_TO_PASS,
PASS_TO_PASS). A bundled task's repository ships in its fixed state; the buggy base is that tree with the
reference patch applied in reverse (computed on the host, from our own files, once per task, never from
anything an agent wrote). A SWE-bench instance runs in its own image, whose repository is already at
`base_commit` (the SWE-bench convention: `/testbed`), through the docker backend.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

TASKS_DIR = Path(__file__).with_name("tasks")
REPOS_DIR = TASKS_DIR / "repos"


@dataclass(frozen=True)
class SweTask:
    instance_id: str
    repo: str
    problem_statement: str
    patch: str
    test_patch: str
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    difficulty: str = "unknown"
    #: where the repository lives in the sandbox
    workdir: str = "/workspace/repo"
    #: SWE-bench instances: the image that holds the repository at base_commit (docker backend only)
    image: str | None = None
    base_commit: str | None = None
    test_command: str = "python -m pytest"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def bundled(self) -> bool:
        return self.image is None


def _as_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # SWE-bench stores these lists as JSON strings
        value = json.loads(value) if value.strip().startswith("[") else [value]
    return tuple(str(v) for v in value or ())


def task_from_record(record: dict[str, Any], **overrides: Any) -> SweTask:
    missing = [k for k in ("instance_id", "repo", "problem_statement", "patch", "test_patch") if k not in record]
    if missing:
        raise ValueError(f"task record {record.get('instance_id', '?')} lacks {', '.join(missing)}")
    return SweTask(
        instance_id=str(record["instance_id"]),
        repo=str(record["repo"]),
        problem_statement=str(record["problem_statement"]),
        patch=str(record["patch"]),
        test_patch=str(record["test_patch"]),
        fail_to_pass=_as_list(record.get("FAIL_TO_PASS")),
        pass_to_pass=_as_list(record.get("PASS_TO_PASS")),
        difficulty=str(record.get("difficulty", "unknown")),
        **overrides,
    )


@lru_cache(maxsize=1)
def bundled_tasks() -> tuple[SweTask, ...]:
    """Every task of the bundled set, in a stable order."""
    tasks = []
    for path in sorted(TASKS_DIR.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                tasks.append(task_from_record(json.loads(line)))
    return tuple(tasks)


def load_instances(path: str | Path, *, image_template: str = "swebench/sweb.eval.x86_64.{id}:latest",
                   workdir: str = "/testbed", test_command: str = "python -m pytest") -> list[SweTask]:
    """SWE-bench / SWE-Gym instances from a .json (a list) or .jsonl file.

    Each runs with the docker backend in the image named by the record's `image_name` (or `image`), else
    by `image_template` (SWE-bench's convention; `__` in ids becomes `_1776_`, as in its images); the
    repository is expected at `workdir` and checked out at `base_commit`.
    """
    text = Path(path).read_text()
    if text.lstrip().startswith("["):
        records = json.loads(text)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    tasks = []
    for record in records:
        image = record.get("image_name") or record.get("image") or image_template.format(
            id=str(record["instance_id"]).lower().replace("__", "_1776_"))
        tasks.append(task_from_record(record, image=image, base_commit=record.get("base_commit"), workdir=workdir,
                                      test_command=record.get("test_cmd", test_command)))
    return tasks


def _git_apply(directory: Path, patch: str, *reverse: str) -> None:
    result = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", "apply", "--whitespace=nowarn", *reverse, "-"],
        cwd=directory, input=patch.encode(), capture_output=True, check=False,
    )
    if result.returncode != 0:
        raise ValueError(f"the patch does not apply: {result.stderr.decode(errors='replace').strip()}")


@lru_cache(maxsize=64)
def base_archive(instance_id: str) -> bytes:
    """The buggy base of a bundled task as a tar archive (the repo with the reference patch reversed)."""
    task = next((t for t in bundled_tasks() if t.instance_id == instance_id), None)
    if task is None:
        raise KeyError(f"no bundled task {instance_id!r}")
    with tempfile.TemporaryDirectory(prefix="agentenv-swe-") as tmp:
        tree = Path(tmp) / "repo"
        shutil.copytree(REPOS_DIR / task.repo, tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc",
                                                                                     ".pytest_cache"))
        _git_apply(tree, task.patch, "-R")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(tree, arcname=".", filter=_normalise)
    return buffer.getvalue()


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def fixed_file(task: SweTask, path: str) -> str | None:
    """The reference (fixed) content of a file of a bundled task, for the expert's fallback."""
    if not task.bundled:
        return None
    candidate = (REPOS_DIR / task.repo / path).resolve()
    if not candidate.is_relative_to((REPOS_DIR / task.repo).resolve()) or not candidate.is_file():
        return None
    return candidate.read_text()
