"""The desktop mode of the GUI environments: Tk programs on a virtual X display, driven by pixel actions.

An episode starts the task's program (:mod:`agentenv.envs.gui.desktop_apps`) on the env's display, seeded
from ``np_random``, and shows the agent a screenshot and the instruction. Actions are the pixel actions of
:mod:`agentenv.envs.gui.actions`, carried out with xdotool; after each one the env asks the program for
its state, which the program answers only once it has handled every input sent before the question, so
the next screenshot never races the program. The display is started once per env instance and reused by
its episodes (starting Xvfb is the slow part); ``close()`` ends the program and the display.

Reward: 1.0 when the task is achieved, else 0.0. An episode ends (terminated) when the task's own submit
happens (a Submit button, Enter, the chosen list item, menu item or '=') or on ``done()``, which scores the
current state; some wrong choices (another button, list item or menu item) end it at once with 0.0.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from agentenv.env import Env, StepResult
from agentenv.envs.gui.actions import parse_gui_action, parsed_gui_action, screen_prompt
from agentenv.envs.gui.display import DisplayUnavailable, VirtualDisplay, XdotoolError
from agentenv.messages import Message, Observation, image_part, message, observation, text_part
from agentenv.parsing import ParsedAction

APP_PATH = Path(__file__).with_name("desktop_apps.py")
#: the tasks of desktop_apps.TASKS, named here so that registering them does not import tkinter
TASKS = ("click-button", "type-text", "check-boxes", "select-list", "drag-slider", "menu-command", "calculator",
         "key-press")
def env_id(task: str) -> str:
    return "agentenv/Desktop-" + "".join(part.capitalize() for part in task.split("-")) + "-v0"


class _App:
    """The task program of one episode, with a reader thread so that a silent program never blocks us.

    It is started before its episode (connected, no window) and given its seed by :meth:`start`.
    """

    def __init__(self, display: VirtualDisplay, task: str):
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        width, height = display.size
        self.proc = display.popen([sys.executable, "-I", str(APP_PATH), task, "-", str(width), str(height)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                  bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._seq = 0
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                self._lines.put(line)
        self._lines.put(None)

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise RuntimeError(f"the task program exited: {self._stderr_tail()}") from None

    def start(self, seed: int, timeout: float) -> dict[str, Any]:
        """Set the task up from ``seed`` and show it; the state once it is drawn."""
        self._send(f"start {seed}")
        return self._answer(timeout)

    def state(self, timeout: float) -> dict[str, Any]:
        """The program's state once it has handled all input sent so far."""
        self._send(f"state {self._seq}")
        return self._answer(timeout)

    def _answer(self, timeout: float) -> dict[str, Any]:
        want, self._seq = self._seq, self._seq + 1
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"the task program did not answer within {timeout:.0f} s") from None
            if line is None:
                raise RuntimeError(f"the task program exited: {self._stderr_tail()}")
            try:
                state = json.loads(line)
            except json.JSONDecodeError:
                continue  # a stray print (a library's warning) is not an answer
            if isinstance(state, dict) and state.get("seq") == want:
                if "error" in state:
                    raise RuntimeError(f"the task program failed: {state['error']}")
                return dict(state)

    def _stderr_tail(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(1)
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-800:] or f"status {self.proc.returncode}"

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # EOF: the program quits by itself
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


class DesktopEnv(Env):
    """One desktop task of :mod:`agentenv.envs.gui.desktop_apps` (ids ``agentenv/Desktop-<Task>-v0``)."""

    #: the Tk programs' state lives in another process (focus, timers, window placement): a replay of
    #: clicks is not guaranteed to reach the same screen, so tree rollouts are refused
    clone_mode = "none"

    family = "gui"

    @classmethod
    def node_resources(cls, kwargs: dict[str, Any]) -> dict[str, float]:
        return {"xvfb": 1}  # Xvfb, xdotool and Tk

    def __init__(self, task: str, max_turns: int = 15, screen: tuple[int, int] = (640, 480),
                 action_timeout: float = 10.0, **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        if task not in TASKS:
            raise ValueError(f"no desktop task {task!r}; choose one of {', '.join(TASKS)}")
        if importlib.util.find_spec("tkinter") is None:
            raise DisplayUnavailable("the desktop tasks are Tk programs and this Python has no tkinter: "
                                     "run `apt-get install -y python3-tk`")
        self.task = task
        self.screen = (int(screen[0]), int(screen[1]))
        self.action_timeout = action_timeout
        self.display: VirtualDisplay | None = None
        self.app: _App | None = None
        self._spare: _App | None = None  # the next episode's program, loading while this one runs
        self.last_state: dict[str, Any] = {}

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self._close_app()
        if self.display is None:
            self.display = VirtualDisplay(self.screen, command_timeout=self.action_timeout)
        seed = int(self.np_random.integers(2**31 - 1))
        self.display.move_pointer(self.screen[0] - 1, self.screen[1] - 1)  # no hover left from the last episode
        self.app, self._spare = self._spare or _App(self.display, self.task), None
        self.last_state = self.app.start(seed, timeout=30.0)
        self._spare = _App(self.display, self.task)
        obs = observation(message("system", screen_prompt(self.screen, "a desktop program")), self._user_message())
        return obs, {"task_type": self.task, "instruction": self.last_state["instruction"], "app_seed": seed}

    def _user_message(self, feedback: str = "") -> Message:
        assert self.display is not None
        width, height = self.screen
        text = f"{feedback}Instruction: {self.last_state['instruction']}\nScreen: {width}x{height}"
        return message("user", [text_part(text), image_part(self.display.screenshot())])

    def parse_action(self, text: str) -> ParsedAction:
        return parsed_gui_action(text, self.screen)

    def _step(self, action: ParsedAction) -> StepResult:
        assert self.display is not None and self.app is not None
        parsed = parse_gui_action(action.command or "", self.screen)
        if parsed.name == "done":
            self.last_state = self.app.state(self.action_timeout)
            won = bool(self.last_state["solved"])
            return StepResult(observation(self._user_message()), float(won), terminated=True,
                              info={"won": won, "ended_by": "done"})
        feedback = ""
        try:
            self.display.perform(parsed)
        except XdotoolError as exc:  # e.g. text xdotool cannot type: the agent's to fix, not a broken env
            feedback = f"Error: {exc}\n\n"
        self.last_state = self.app.state(self.action_timeout)
        ended, won = bool(self.last_state["ended"]), bool(self.last_state["won"])
        info: dict[str, Any] = {"won": won}
        if feedback:
            info["error"] = feedback.strip()
        if ended:
            info["ended_by"] = "task"
        return StepResult(observation(self._user_message(feedback)), float(won) if ended else 0.0,
                          terminated=ended, info=info)

    def expert_action(self) -> str | None:
        """The scripted solver's next action, computed by the program from its widgets' screen geometry."""
        if self.app is None or self._done:
            return None
        return str(self.app.state(self.action_timeout)["expert"])

    def _close_app(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = None

    def _close(self) -> None:
        try:
            self._close_app()
            if self._spare is not None:
                self._spare.close()
        finally:
            if self.display is not None:
                self.display.close()
                self.display = None


def register_desktop() -> None:
    """Register one env id per desktop task."""
    from agentenv.registry import register

    for task in TASKS:
        register(env_id(task), "agentenv.envs.gui.desktop:DesktopEnv", family="gui",
                 description=f"Desktop {task}: a Tk program on Xvfb, seen as screenshots, driven by xdotool.",
                 kwargs={"task": task})
