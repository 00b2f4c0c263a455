"""The code interpreter's kernel inside a real bwrap sandbox: state across cells, values, errors, and
the kernel killers of reliability B14 (the session is interrupted, or dies and says so, never hangs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agentenv.envs.code.kernel as kernel_module
from agentenv.sandboxes import SandboxLimits, make_sandbox

KERNEL = Path(kernel_module.__file__)


@pytest.fixture
def session():
    box = make_sandbox("bwrap", SandboxLimits(wall_time_s=10, processes=32, memory_bytes=1 << 30),
                       ro_binds=[(str(KERNEL), "/opt/agentenv/kernel.py")])

    def start():
        box.start_process("py", ["python3", "-I", "/opt/agentenv/kernel.py"])
        hello = box.request("py", "", timeout=10)  # the kernel greets first; an empty line is ignored
        return hello

    box.start = start  # type: ignore[attr-defined]
    yield box
    box.close()


def cell(box, code, timeout=5.0):  # type: ignore[no-untyped-def]
    reply = box.request("py", json.dumps({"code": code}), timeout=timeout, interrupt_grace=1.0)
    return reply, (json.loads(reply.data) if reply.data else None)


def test_state_values_output_and_errors(session):
    assert json.loads(session.start().data)["ready"]
    _, out = cell(session, "x = 6\nprint('hi')\nx * 7")
    assert out["stdout"] == "hi\n" and out["value"] == "42" and out["error"] is None
    _, out = cell(session, "import os\nos.system('echo from-child')\nx + 1")
    assert "from-child" in out["stdout"] and out["value"] == "7"
    _, out = cell(session, "def f():\n    return 1 / 0\nf()")
    assert out["error"]["type"] == "ZeroDivisionError"
    assert "<cell>" in out["error"]["traceback"] and "kernel.py" not in out["error"]["traceback"]
    _, out = cell(session, "x = ")
    assert out["error"]["type"] == "SyntaxError"
    _, out = cell(session, "input()")
    assert out["error"]["type"] == "EOFError"
    _, out = cell(session, "print('y' * 200000)")
    assert out["dropped"] > 0 and "truncated" in out["stdout"]


def test_interrupt_keeps_the_session(session):
    session.start()
    cell(session, "kept = 'yes'")
    reply, out = cell(session, "while True: pass", timeout=0.5)
    assert reply.status == "interrupted" and out["error"]["type"] == "KeyboardInterrupt"
    _, out = cell(session, "kept")
    assert out["value"] == "'yes'"


@pytest.mark.parametrize("killer", [
    "import os; os._exit(1)",
    "import ctypes; ctypes.string_at(0)",
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass",
])
def test_b14_kernel_killers_end_in_a_typed_death_and_a_working_restart(session, killer):
    session.start()
    cell(session, "lost = 1")
    reply, _ = cell(session, killer, timeout=0.5)
    assert reply.status in ("died", "killed") and not reply.alive
    session.start()
    _, out = cell(session, "1 + 1")
    assert out["value"] == "2"
    _, out = cell(session, "lost")
    assert out["error"]["type"] == "NameError"


def test_stdout_sabotage_does_not_break_the_channel(session):
    session.start()
    _, out = cell(session, "import sys, os\nsys.stdout = None\nos.write(1, b'raw\\n')\n5")
    assert out["value"] == "5" and "raw" in out["stdout"]
    _, out = cell(session, "print('fine')")
    assert out["stdout"] == "fine\n"
