"""Software engineering: fix a bug in a real repository inside a sandbox, judged as SWE-bench judges.

The agent gets the issue text and a checkout of the buggy repository (a git repository with one commit,
the base). Tools: `bash` (a command in the repository; stdin is empty, pagers are off, so `less`, `git
log` or `python` end instead of hanging), `str_replace_editor` (SWE-agent's and OpenHands' editor),
`run_tests` (pytest on the repository's tests, or the ones named) and `submit`. On submit the diff against
the base (with the task's test files left out, as SWE-bench does) is applied to a fresh base with the
hidden test patch, and the reward is 1 when every FAIL_TO_PASS test passes and every PASS_TO_PASS test
still passes, else 0. Each episode's sandbox comes from a warm pool.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentenv.env import Env, StepResult
from agentenv.envs.swe import patches
from agentenv.envs.swe.editor import EDITOR_TOOL, Editor
from agentenv.envs.swe.grading import SAFE_GIT, grade, run_tests
from agentenv.envs.swe.tasks import SweTask, base_archive, bundled_tasks, fixed_file, load_instances
from agentenv.messages import Observation, message, observation
from agentenv.parsing import ParsedAction, ToolCallParser
from agentenv.sandboxes import Sandbox, SandboxLimits, SandboxPool, make_sandbox, sandbox_resources
from agentenv.sandboxes.output import cap_text

SYSTEM_PROMPT = (
    "You are a software engineer fixing an issue in a Python repository. The repository is checked out in "
    "your working directory. Explore the code, reproduce the problem, make the smallest correct change to "
    "the source (not to the tests), check it with the tests, then call `submit`. Commands run in a fresh "
    "shell each time, in the repository root, with no input; the editor keeps an undo history."
)

TOOLS = [
    {"type": "function", "function": {
        "name": "bash", "description": "Run a shell command in the repository root and return its output.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"},
                                                        "timeout": {"type": "number"}}, "required": ["command"]}}},
    EDITOR_TOOL,
    {"type": "function", "function": {
        "name": "run_tests", "description": "Run the repository's tests (all, or the given pytest node ids/paths).",
        "parameters": {"type": "object", "properties": {"tests": {"type": "array", "items": {"type": "string"}}}}}},
    {"type": "function", "function": {
        "name": "submit", "description": "Submit your change for evaluation. Ends the episode.",
        "parameters": {"type": "object", "properties": {}}}},
]


#: full-screen programs that wait on a terminal forever (SWE-agent keeps a similar list); refused at once
INTERACTIVE = frozenset({"vi", "vim", "nvim", "view", "emacs", "nano", "pico", "ed", "top", "htop", "watch", "man",
                         "gdb", "pdb", "ipython", "tmux", "screen", "ssh", "telnet", "ftp"})


def interactive_program(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None  # let the shell report the syntax error
    return words[0] if words and Path(words[0]).name in INTERACTIVE else None


def tool_call(name: str, **arguments: Any) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def sandbox_path_env() -> dict[str, str]:
    """PATH with the host interpreter's bin first: `python` and `pytest` are the bound venv's."""
    return {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"}


class SweEnv(Env):
    """Bug-fix tasks (the bundled set by default, or SWE-bench / SWE-Gym instance files).

    Options: `tasks` ("bundled", a path to instances, or SweTask objects), `repos` (keep only these),
    `sandbox` (backend; instances always use docker), `command_timeout`, `test_timeout`, `pool_size`,
    `max_observation_chars`.
    """

    family = "swe"

    @classmethod
    def node_resources(cls, kwargs: dict[str, Any]) -> dict[str, float]:
        bundled = kwargs.get("tasks", "bundled") == "bundled"  # other task sets need their images: docker
        return sandbox_resources(str(kwargs.get("sandbox", "bwrap")) if bundled else "docker")

    def __init__(
        self,
        tasks: str | Sequence[SweTask] = "bundled",
        repos: Sequence[str] | None = None,
        sandbox: str = "bwrap",
        command_timeout: float = 30.0,
        test_timeout: float = 300.0,
        limits: SandboxLimits | None = None,
        pool_size: int = 1,
        max_turns: int = 40,
        max_observation_chars: int = 8000,
        docker_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(max_turns=max_turns, **kwargs)
        if isinstance(tasks, str):
            loaded = list(bundled_tasks()) if tasks == "bundled" else load_instances(tasks)
        else:
            loaded = list(tasks)
        if repos:
            loaded = [t for t in loaded if t.repo in set(repos)]
        if not loaded:
            raise ValueError("no SWE tasks selected")
        self.tasks = loaded
        self.backend = sandbox if all(t.bundled for t in loaded) else "docker"
        self.command_timeout, self.test_timeout = command_timeout, test_timeout
        self.limits = limits or SandboxLimits(wall_time_s=command_timeout, processes=128, memory_bytes=2 << 30,
                                              disk_bytes=512 << 20, max_timeout_s=max(600.0, test_timeout))
        self.pool_size, self.max_observation_chars = pool_size, max_observation_chars
        self.docker_options = docker_options or {}
        self.parser = ToolCallParser(TOOLS, max_calls=1)
        self.pools: dict[str | None, SandboxPool] = {}
        self.sandbox: Sandbox | None = None
        self.task: SweTask | None = None
        self.editor: Editor | None = None
        self.expert_plan: list[patches.Edit] = []
        self.env_vars = sandbox_path_env()

    # ---- sandboxes ------------------------------------------------------------------------------------

    def _new_sandbox(self, task: SweTask) -> Sandbox:
        if task.bundled:
            return make_sandbox(self.backend, self.limits, **self.docker_options)
        options = {"image": task.image, "workspace": task.workdir, "python": "python3", "host_binds": False,
                   "user": "0:0", **self.docker_options}
        return make_sandbox("docker", self.limits, **options)

    def _pool(self, task: SweTask) -> SandboxPool:
        key = task.image  # one pool per image (None: the bundled tasks' plain sandboxes)
        if key not in self.pools:
            self.pools[key] = SandboxPool(lambda: self._new_sandbox(task), size=self.pool_size)
        return self.pools[key]

    def checkout_base(self, sandbox: Sandbox, task: SweTask) -> None:
        """Put the buggy base in the sandbox as a git repository with a single commit."""
        if task.bundled:
            setup = (f"mkdir -p {task.workdir} && tar -x -C {task.workdir} && cd {task.workdir} && "
                     f"{SAFE_GIT} init -q && {SAFE_GIT} add -A && "
                     f"{SAFE_GIT} -c user.name=agentenv -c user.email=agentenv@localhost commit -qm base")
            result = sandbox.exec(setup, stdin=base_archive(task.instance_id), env=self.env_vars, timeout=60)
            if not result.ok:
                raise RuntimeError(f"cannot check out {task.instance_id}: {result.stderr.strip()}")

    def _fresh_base(self) -> Sandbox:
        assert self.task is not None
        sandbox = self._new_sandbox(self.task)
        try:
            self.checkout_base(sandbox, self.task)
        except BaseException:
            sandbox.close()
            raise
        return sandbox

    def _release(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
        self.sandbox = None

    def _close(self) -> None:
        self._release()
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()

    # ---- episode --------------------------------------------------------------------------------------

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self._release()
        options = options or {}
        if "instance_id" in options:
            matches = [t for t in self.tasks if t.instance_id == options["instance_id"]]
            if not matches:
                raise ValueError(f"no task {options['instance_id']!r}")
            self.task = matches[0]
        else:
            self.task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        self.sandbox = self._pool(self.task).acquire()
        self.checkout_base(self.sandbox, self.task)
        self.editor = Editor(self.sandbox, self.task.workdir)
        self.expert_plan = patches.edits_from_diff(self.task.patch)
        text = (f"Repository: {self.task.repo} (checked out in {self.task.workdir})\n\n"
                f"<issue>\n{self.task.problem_statement.strip()}\n</issue>\n\n"
                "Fix the issue, then call submit.")
        obs = observation(message("system", f"{SYSTEM_PROMPT} {self.parser.format_help}"), text, tools=TOOLS)
        return obs, {"task_type": self.task.repo, "instance_id": self.task.instance_id,
                     "difficulty": self.task.difficulty}

    def parse_action(self, text: str) -> ParsedAction:
        return self.parser.parse(text)

    def _step(self, action: ParsedAction) -> StepResult:
        assert self.sandbox is not None and self.task is not None and self.editor is not None
        call = action.tool_calls[0]
        args = call.arguments
        if call.name == "submit":
            return self.submit()
        if call.name == "bash":
            try:
                timeout = self.limits.clamp_timeout(args.get("timeout", self.command_timeout))
            except ValueError as exc:
                return self.tool_result(f"Error: {exc}")
            program = interactive_program(str(args["command"]))
            if program is not None:
                return self.tool_result(
                    f"Error: `{program}` is interactive and would wait for a terminal; there is none here. "
                    "Use str_replace_editor to view and edit files, and plain commands (cat, sed -n, grep) to read.",
                    {"exit_code": None})
            result = self.sandbox.exec(str(args["command"]), cwd=self.task.workdir, env=self.env_vars,
                                       timeout=min(timeout, self.test_timeout))
            text = (result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")).strip()
            return self.tool_result(f"{text}\n[{result.describe()}]".strip(), {"exit_code": result.exit_code})
        if call.name == "str_replace_editor":
            return self.tool_result(self.editor.run(args))
        if call.name == "run_tests":
            tests = [str(t) for t in args.get("tests") or []]
            run = run_tests(self.sandbox, self.task.workdir, tests, test_command=self.task.test_command,
                            timeout=self.test_timeout, env=self.env_vars)
            counts: dict[str, int] = {}
            for outcome in run.outcomes.values():
                counts[outcome] = counts.get(outcome, 0) + 1
            summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tests ran"
            return self.tool_result(f"{run.output.strip()}\n[{summary}]", {"test_outcomes": counts})
        raise AssertionError(f"unhandled tool {call.name}")  # the parser only admits the tools above

    def tool_result(self, text: str, info: dict[str, Any] | None = None) -> StepResult:
        return StepResult(observation(message("tool", cap_text(text, self.max_observation_chars))), 0.0,
                          info=info or {})

    def submission_diff(self) -> str:
        """The agent's change against the base, without the files the hidden test patch touches."""
        assert self.sandbox is not None and self.task is not None
        excluded = " ".join(shlex.quote(f":(exclude){p}") for p in patches.touched_paths(self.task.test_patch))
        result = self.sandbox.exec(
            f"{SAFE_GIT} add -A >/dev/null 2>&1; {SAFE_GIT} diff --cached --no-color --binary HEAD -- . {excluded}",
            cwd=self.task.workdir, env=self.env_vars, timeout=60)
        return result.stdout if result.ok else ""

    def submit(self) -> StepResult:
        assert self.task is not None
        diff = self.submission_diff()
        verdict = grade(self.task.workdir, self.task.fail_to_pass, self.task.pass_to_pass, diff,
                        self.task.test_patch, self._fresh_base, test_command=self.task.test_command,
                        env=self.env_vars, timeout=self.test_timeout)
        passed = sum(verdict.fail_to_pass.values()) + sum(verdict.pass_to_pass.values())
        total = len(verdict.fail_to_pass) + len(verdict.pass_to_pass)
        text = (f"Submitted. {'Resolved' if verdict.resolved else 'Not resolved'}: "
                f"{passed}/{total} of the evaluation tests pass.{' ' + verdict.note if verdict.note else ''}")
        return StepResult(observation(message("tool", text)), verdict.reward, terminated=True,
                          info={"won": verdict.resolved, "verdict": verdict.to_dict(), "diff": diff})

    # ---- expert ---------------------------------------------------------------------------------------

    def expert_action(self) -> str | None:
        """Apply the reference patch hunk by hunk through the editor, then submit."""
        if self.task is None or self.editor is None:
            return None
        for edit in self.expert_plan:
            path = f"{self.task.workdir}/{edit.path}"
            if edit.kind == "create":
                if not self.editor.exists(path):
                    return tool_call("str_replace_editor", command="create", path=path, file_text=edit.new)
                continue
            if edit.kind == "delete":
                if self.editor.exists(path):
                    return tool_call("bash", command=f"rm -f -- {shlex.quote(edit.path)}")
                continue
            content = self.editor.read(path) if self.editor.exists(path) else ""
            if edit.new and edit.new in content and edit.old not in content:
                continue  # this hunk is in
            unique = patches.unique_old_text(content, edit.old, edit.new)
            if unique is not None:
                old, new = unique
                return tool_call("str_replace_editor", command="str_replace", path=path, old_str=old, new_str=new)
            reference = fixed_file(self.task, edit.path)
            if reference is not None and reference != content:  # the file drifted: write the reference whole
                return self._rewrite(edit.path, reference)
            return None
        return tool_call("submit")

    def _rewrite(self, path: str, content: str) -> str:
        """Replace a whole file's content through the editor: view-free str_replace of all of it."""
        assert self.editor is not None and self.task is not None
        current = self.editor.read(f"{self.task.workdir}/{path}")
        return tool_call("str_replace_editor", command="str_replace", path=f"{self.task.workdir}/{path}",
                         old_str=current, new_str=content)
