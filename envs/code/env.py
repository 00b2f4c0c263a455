"""The code interpreter: solve reasoning and math tasks by running Python in a sandboxed, stateful session.

Tools: `python(code)` runs a cell in the episode's own Python session (variables persist across turns)
and returns stdout, stderr, the value of the last expression and the error with a short traceback;
`answer(answer)` submits the final answer, scored by the task's scorer (the reward, in [0, 1]).

Each episode gets a fresh sandbox from a warm pool with the kernel already started, so a reset costs a
queue pop. A cell that runs past `cell_timeout` is interrupted and the session kept; a session that
dies (or ignores the interrupt) is restarted and the observation says its variables are gone. A sandbox
that dies is an infrastructure fault (`SandboxDied` propagates: never trained on as a model error, and
never replaced mid-episode by a fresh sandbox whose empty workspace the agent would then act on).

A sandbox lives at most `limits.ttl_s`; the env refuses a TTL shorter than its episode deadline plus a
scoring buffer (`check_ttl`, reliability F12), so a slow episode is scored instead of losing its sandbox.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from agentenv.env import Env, GraderError, StepResult
from agentenv.envs.code import solvers
from agentenv.envs.code.tasks import DEFAULT_FAMILIES, MATH_FAMILIES, SPLIT_SEEDS, CodeTask, make_task, score
from agentenv.messages import Observation, message, observation
from agentenv.parsing import ParsedAction, ToolCallParser
from agentenv.sandboxes import Sandbox, SandboxLimits, SandboxPool, check_ttl, make_sandbox, sandbox_resources
from agentenv.sandboxes.base import DEFAULT_SCORING_BUFFER_S
from agentenv.sandboxes.output import cap_text

KERNEL_SOURCE = Path(__file__).with_name("kernel.py")
KERNEL_PATH = "/opt/agentenv/kernel.py"
SESSION = "python"

SYSTEM_PROMPT = (
    "You solve problems by reasoning step by step and running Python code. You have a Python interpreter: "
    "call the `python` tool to compute, check intermediate results and verify your answer before you give "
    "it. Use the tool as much as it helps: exact arithmetic, enumeration and checks are more reliable in "
    "code than in your head. Variables persist between calls. The last expression of a cell is shown, as "
    "in a notebook. When you are sure, call the `answer` tool once with the final answer only (no units, "
    "no explanation), in the format the question asks for."
)

TOOLS = [
    {"type": "function", "function": {
        "name": "python",
        "description": "Run Python code in a persistent session and return its output.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    }},
    {"type": "function", "function": {
        "name": "answer",
        "description": "Submit the final answer. Ends the episode.",
        "parameters": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
    }},
]


def tool_call(name: str, **arguments: str) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


class CodeInterpreterEnv(Env):
    """Reasoning-gym and math tasks with a sandboxed Python tool.

    Options: `families` (reasoning-gym dataset names; default a mix of procedural families, the ones the
    expert solves), `split` ("train" or "test": disjoint task seeds), `sandbox` (backend), `cell_timeout`
    (seconds per cell), `pool_size` (warm sandboxes), `max_observation_chars` (per tool result),
    `episode_deadline_s` (the collector's episode deadline) and `scoring_buffer_s` (the time scoring may
    take after it), which the sandbox TTL must cover.
    """

    family = "code"

    @classmethod
    def node_resources(cls, kwargs: dict[str, Any]) -> dict[str, float]:
        return sandbox_resources(str(kwargs.get("sandbox", "bwrap")))

    def __init__(
        self,
        families: tuple[str, ...] | list[str] = DEFAULT_FAMILIES,
        split: str = "train",
        sandbox: str = "bwrap",
        cell_timeout: float = 10.0,
        limits: SandboxLimits | None = None,
        pool_size: int = 1,
        max_turns: int = 8,
        max_observation_chars: int = 4000,
        episode_deadline_s: float = 3600.0,
        scoring_buffer_s: float = DEFAULT_SCORING_BUFFER_S,
        **kwargs: Any,
    ):
        super().__init__(max_turns=max_turns, **kwargs)
        if split not in SPLIT_SEEDS:
            raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
        if not families:
            raise ValueError("families must name at least one reasoning-gym dataset")
        self.families, self.split = tuple(families), split
        self.backend, self.cell_timeout, self.pool_size = sandbox, cell_timeout, pool_size
        self.limits = limits or SandboxLimits(wall_time_s=cell_timeout, memory_bytes=2 << 30, processes=64,
                                              ttl_s=max(2 * 3600.0, episode_deadline_s + scoring_buffer_s))
        check_ttl(self.limits, episode_deadline_s, scoring_buffer_s)
        self.episode_deadline_s, self.scoring_buffer_s = episode_deadline_s, scoring_buffer_s
        self.max_observation_chars = max_observation_chars
        self.parser = ToolCallParser(TOOLS, max_calls=1)
        self.pool: SandboxPool | None = None
        self.sandbox: Sandbox | None = None
        self.task: CodeTask | None = None
        self.last_stdout = ""
        self.ran_expert_code = False
        self.restarts = 0

    # ---- sandbox and session --------------------------------------------------------------------------

    def _new_sandbox(self) -> Sandbox:
        return make_sandbox(self.backend, self.limits, ro_binds=[(str(KERNEL_SOURCE), KERNEL_PATH)])

    def _start_session(self, sandbox: Sandbox) -> None:
        # The host's interpreter (bound read-only in the sandbox): the agent gets its packages (numpy, sympy).
        sandbox.start_process(SESSION, [sys.executable, "-I", KERNEL_PATH])
        hello = sandbox.request(SESSION, "", timeout=30)  # the kernel greets first; a blank line asks nothing
        if hello.status != "ok" or not hello.data or not json.loads(hello.data).get("ready"):
            raise RuntimeError(f"the Python session did not start: {hello}")

    def _release(self) -> None:
        if self.sandbox is not None and self.pool is not None:
            self.pool.release(self.sandbox)
        self.sandbox = None

    def _close(self) -> None:
        self._release()
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    # ---- episode --------------------------------------------------------------------------------------

    def _draw_task(self, options: dict[str, Any] | None) -> CodeTask:
        options = options or {}
        if "family" in options or "task_seed" in options:
            family = options.get("family", self.families[0])
            seed = int(options.get("task_seed", SPLIT_SEEDS[self.split][0]))
            return make_task(family, seed, self.split)
        low, high = SPLIT_SEEDS[self.split]
        for _ in range(20):
            family = self.families[int(self.np_random.integers(len(self.families)))]
            task = make_task(family, int(self.np_random.integers(low, high)), self.split)
            if not task.procedural:
                return task
            try:  # a few generated entries cannot be scored at all (reasoning-gym bugs): skip those
                solvers.solution_code(task.family, task.question)
                return task
            except solvers.UnsolvableTask:
                continue
        return task

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self._release()
        if self.pool is None:
            self.pool = SandboxPool(self._new_sandbox, size=self.pool_size, prepare=self._start_session)
        self.sandbox = self.pool.acquire(min_life_s=self.episode_deadline_s + self.scoring_buffer_s)
        self.task = self._draw_task(options)
        self.last_stdout, self.ran_expert_code, self.restarts = "", False, 0
        obs = observation(
            message("system", f"{SYSTEM_PROMPT} {self.parser.format_help}"),
            self.task.question,
            tools=TOOLS,
        )
        info = {"task_type": self.task.family, "split": self.split, "task_seed": self.task.seed,
                "question": self.task.question}
        return obs, info

    def parse_action(self, text: str) -> ParsedAction:
        return self.parser.parse(text)

    def _step(self, action: ParsedAction) -> StepResult:
        call = action.tool_calls[0]
        assert self.task is not None
        if call.name == "answer":
            given = str(call.arguments["answer"]).strip()
            try:
                reward = score(self.task, given)
            except Exception as exc:  # the scorer's fault, not the answer's: infra, never a reward of 0
                raise GraderError(f"scoring {self.task.family} task {self.task.seed} failed: {exc!r}") from exc
            verdict = "correct" if reward >= 1.0 else "incorrect" if reward == 0 else f"partly correct ({reward:.2f})"
            return StepResult(observation(message("tool", f"Answer submitted: {verdict}.")), reward,
                              terminated=True, info={"won": reward >= 1.0, "answer": given, "score": reward})
        code = str(call.arguments["code"])
        text, info = self.run_cell(code)
        self.ran_expert_code = code == self._expert_code()
        return StepResult(observation(message("tool", text)), 0.0, info=info)

    def run_cell(self, code: str) -> tuple[str, dict[str, Any]]:
        """Run one cell; the tool result as the model sees it, and facts for the trajectory."""
        assert self.sandbox is not None
        reply = self.sandbox.request(SESSION, json.dumps({"code": code}), timeout=self.cell_timeout,
                                     interrupt_grace=2.0)
        info: dict[str, Any] = {"cell_status": reply.status, "cell_seconds": round(reply.duration_s, 3)}
        if not reply.alive:
            self.restarts += 1
            self._start_session(self.sandbox)
            why = ("ran past its time limit and ignored the interrupt" if reply.status == "killed"
                   else "was killed by its memory limit" if reply.limit == "memory" else "crashed")
            info["session_restarted"] = True
            self.last_stdout = ""
            return (f"[error] the Python session {why} (exit {reply.exit_code}) and was restarted: "
                    "variables and imports from earlier cells are gone.", info)
        result = json.loads(reply.data or "{}")
        self.last_stdout = result.get("stdout", "")
        return cap_text(format_cell(result), self.max_observation_chars), info

    def _expert_code(self) -> str | None:
        if self.task is None or not self.task.procedural:
            return None
        try:
            return solvers.solution_code(self.task.family, self.task.question)
        except solvers.UnsolvableTask:
            return None

    def expert_action(self) -> str | None:
        """For procedural families: run the solver's code, then submit what it printed."""
        code = self._expert_code()
        if code is None or self.task is None:
            return None
        if not self.ran_expert_code or not self.last_stdout.strip():
            return tool_call("python", code=code)
        return tool_call("answer", answer=solvers.answer_from_output(self.task.family, self.last_stdout))


def format_cell(result: dict[str, Any]) -> str:
    parts = []
    if result.get("stdout"):
        parts.append(f"[stdout]\n{result['stdout'].rstrip()}")
    if result.get("stderr"):
        parts.append(f"[stderr]\n{result['stderr'].rstrip()}")
    if result.get("value") is not None:
        parts.append(f"[value] {result['value']}")
    error = result.get("error")
    if error:
        detail = error.get("traceback") or f"{error.get('type')}: {error.get('message')}"
        if error.get("type") == "KeyboardInterrupt":
            detail = f"KeyboardInterrupt: {error.get('message')}"
        parts.append(f"[error]\n{detail.rstrip()}")
    return "\n".join(parts) if parts else "[no output]"


__all__ = ["MATH_FAMILIES", "CodeInterpreterEnv"]
