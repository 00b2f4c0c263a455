"""Hostile actions from the reliability guide's catalogue (§2, A1-A30), as a model would send them to the
code-interpreter env (``agentenv/CodeInterpreter-v0``): its ``python`` and ``answer`` tool calls.

The adversarial soak (L02) draws from these; so can users soaking their own sandboxed envs. Each payload is
sized for a sandbox with default limits and a short cell timeout: it must hit a limit, never the host.
"""

from __future__ import annotations

import hashlib
import json
import textwrap


def _code(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


#: catalogue id -> Python code (run in the sandboxed kernel)
PAYLOADS: dict[str, str] = {
    "A1-fork-bomb": _code("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                break
    """),
    "A2-memory-bomb": "b = bytearray(64 << 30)",
    "A3-cpu-spin": "while True:\n    pass",
    "A3-sleep": "import time\ntime.sleep(1e9)",
    "A3-stdin": "input()",
    "A4-orphans": _code("""
        import subprocess
        subprocess.Popen(['sh', '-c', '(setsid sleep 1000000 &) ; nohup sleep 1000000 &'])
    """),
    "A5-zombies": _code("""
        import os
        for _ in range(2000):
            if os.fork() == 0:
                os._exit(0)
    """),
    "A6-kill-all": _code("""
        import os, signal
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError as e:
            print(e)
    """),
    "A8-output-flood": "import sys\nsys.stdout.write('y\\n' * 5_000_000)",
    "A8-one-long-line": "print('x' * 20_000_000)",
    "A9-garbage": _code(r"""
        import sys
        sys.stdout.buffer.write(b'\xff\xfe\x00\x1b]0;title\x07\xe2' + b'a' * 8191 + b'\xe2')
    """),
    "A10-disk-fill": _code("""
        f = open('big', 'wb')
        try:
            while True:
                f.write(b'0' * (1 << 20))
        except OSError as e:
            print(e)
    """),
    "A11-fd-exhaustion": _code("""
        files = []
        try:
            while True:
                files.append(open('/dev/null'))
        except OSError as e:
            print(len(files), e)
    """),
    "A12-write-outside": _code("""
        import os
        for path in ['/etc/passwd', os.path.expanduser('~/.bashrc'), '../../x']:
            try:
                open(path, 'a').write('x')
            except OSError as e:
                print(path, e)
    """),
    "A14-secrets": "import os\nprint(sorted(os.environ))\nprint(open('/proc/1/cmdline', 'rb').read()[:200])",
    "A15-egress": _code("""
        import socket
        try:
            socket.create_connection(('1.1.1.1', 80), timeout=1)
        except OSError as e:
            print(e)
    """),
    "A24-os-exit": "import os\nos._exit(1)",
    "A24-segfault": "import ctypes\nctypes.string_at(0)",
    "A30-timeout-abuse": "import time\ntime.sleep(30)",
}

#: tool calls that are themselves malformed (A20, A21): the env answers with a parse error, nothing runs. The
#: long ones are just over an env's default action cap (20,000 characters): long enough to be refused, short
#: enough that a soak's policy server is not busy sending them
MALFORMED: dict[str, str] = {
    "A20-long-argument": '<tool_call>{"name": "python", "arguments": {"code": "' + "x" * 25_000 + '"}}</tool_call>',
    "A21-truncated": '<tool_call>{"name": "python", "arguments": {"code": "print(1)"',
    "A21-unknown-tool": '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
    "A21-nested": "<tool_call>" + "[" * 25_000 + "</tool_call>",
    "A21-wrong-types": '<tool_call>{"name": "python", "arguments": {"code": 12}}</tool_call>',
}

ACTIONS = sorted(PAYLOADS) + sorted(MALFORMED)


def python_call(code: str) -> str:
    return "<tool_call>" + json.dumps({"name": "python", "arguments": {"code": code}}) + "</tool_call>"


def hostile_action(name: str) -> str:
    """The action text of catalogue entry ``name`` (a key of PAYLOADS or MALFORMED)."""
    return MALFORMED[name] if name in MALFORMED else python_call(PAYLOADS[name])


def hostile_code_action(prompt: str) -> str:
    """A respond function for :class:`~agentenv.testing.mock_policy.ScriptedModel`: a catalogue action
    picked by a hash of the conversation so far (deterministic per state); the env's ``max_turns`` ends
    the episode."""
    digest = int(hashlib.sha256(prompt.encode(errors="replace")).hexdigest(), 16)
    return hostile_action(ACTIONS[digest % len(ACTIONS)])
