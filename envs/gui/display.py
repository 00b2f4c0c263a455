"""A virtual X display (Xvfb) that GUI programs run on, photographed with Pillow and driven with xdotool.

Xvfb picks a free display number itself (``-displayfd``), so concurrent displays never race for one, and
listens on unix sockets only, never TCP. Its abstract-namespace socket stays on: it is what makes the
number search skip a display in use (binding it fails), while the filesystem socket would be silently
unlinked and taken over from the server that holds it. Xvfb leads a process group of its
own and every program started on the display joins it, with an environment holding only ``DISPLAY``:
``close()`` kills the whole group, so an episode leaves no process behind and no host secret leaks into
the programs the agent drives.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from agentenv.envs.gui.actions import GuiAction, xdotool_keys

APT_HINT = "apt-get install -y xvfb xdotool"
SCROLL_STEP_PX = 100
MAX_SCROLL_CLICKS = 20
DRAG_STEPS = 5


class XdotoolError(RuntimeError):
    """xdotool refused a command (its message says why); the display itself is fine."""


class DisplayUnavailable(RuntimeError):
    """Xvfb or xdotool is missing, or Xvfb did not start; the message says how to fix it."""


def missing_tools() -> list[str]:
    """The X tools the GUI envs need that are not on PATH (empty when the envs can run)."""
    return [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]


class VirtualDisplay:
    """One Xvfb server of ``size`` pixels (24-bit), with the programs started on it."""

    def __init__(self, size: tuple[int, int] = (640, 480), startup_timeout: float = 10.0,
                 command_timeout: float = 10.0):
        missing = missing_tools()
        if missing:
            raise DisplayUnavailable(f"the GUI environments need {' and '.join(missing)}: run `{APT_HINT}`")
        self.size = size
        self.command_timeout = command_timeout
        self._lock = threading.Lock()
        self._children: list[subprocess.Popen[Any]] = []
        self._closed = False
        self._xvfb, self.number = _start_xvfb(size, startup_timeout)
        self.name = f":{self.number}"
        self.pgid = self._xvfb.pid
        atexit.register(self.close)  # Xvfb is not our child's child: it would outlive an interpreter that forgot it

    @property
    def env(self) -> dict[str, str]:
        """The whole environment of a program on this display: nothing of the host's beyond a PATH."""
        return {"DISPLAY": self.name, "PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a program on the display, in its process group; ``close()`` kills it."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the display is closed")
            proc = subprocess.Popen(list(argv), env=self.env, process_group=self.pgid, **kwargs)
            self._children.append(proc)
            return proc

    def run_xdotool(self, *args: str, timeout: float | None = None) -> str:
        """Run one (possibly chained) xdotool command to completion; its stdout."""
        proc = self.popen(["xdotool", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout or self.command_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError(f"xdotool {' '.join(args)[:200]} timed out on display {self.name}") from None
        finally:
            with self._lock:
                if proc in self._children:
                    self._children.remove(proc)
        if proc.returncode != 0:
            raise XdotoolError(f"xdotool {' '.join(args)[:200]} failed: {err.strip()[:500]}")
        return out

    def perform(self, action: GuiAction) -> None:
        """Carry out a parsed action as one xdotool invocation (see :func:`xdotool_args`)."""
        args = xdotool_args(action)
        if args:
            self.run_xdotool(*args)

    def move_pointer(self, x: int, y: int) -> None:
        self.run_xdotool("mousemove", str(x), str(y))

    def screenshot(self) -> bytes:
        """The whole screen as PNG bytes, exactly ``size`` pixels (no pointer drawn)."""
        from PIL import ImageGrab

        image = ImageGrab.grab(xdisplay=self.name).convert("RGB")
        if image.size != self.size:
            raise RuntimeError(f"screenshot of {self.name} is {image.size}, expected {self.size}")
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    def pids(self) -> list[int]:
        """Live processes of the display's process group (Xvfb and everything started on it)."""
        return _group_members(self.pgid)

    def close(self, timeout: float = 5.0) -> None:
        """Kill every program started on the display, then Xvfb; safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            procs = [*self._children, self._xvfb]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, sig)
            deadline = time.monotonic() + timeout
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.0, deadline - time.monotonic()))
            if all(p.poll() is not None for p in procs) and not _group_members(self.pgid):
                break
        atexit.unregister(self.close)

    def __enter__(self) -> VirtualDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def xdotool_args(action: GuiAction) -> list[str]:
    """The xdotool command line (chained commands, without the program name) that performs ``action``.

    Scrolls are wheel clicks: buttons 4/5 (up/down) and 6/7 (left/right), one per 100 px of delta,
    rounded, at least one for a non-zero delta and at most 20.
    """
    name, a = action.name, [str(v) for v in action.args]
    if name == "click":
        return ["mousemove", a[0], a[1], "click", "1"]
    if name == "double_click":
        return ["mousemove", a[0], a[1], "click", "--repeat", "2", "1"]
    if name == "right_click":
        return ["mousemove", a[0], a[1], "click", "3"]
    if name == "type":
        return ["type", "--delay", "0", "--", str(action.args[0])]
    if name == "key":
        return ["key", "--", xdotool_keys(str(action.args[0]))]
    if name == "scroll":
        x, y, dx, dy = (int(v) for v in action.args)
        args = ["mousemove", str(x), str(y)]
        for delta, (back, forward) in ((dy, ("4", "5")), (dx, ("6", "7"))):
            clicks = min(MAX_SCROLL_CLICKS, max(1, round(abs(delta) / SCROLL_STEP_PX))) if delta else 0
            if clicks:
                args += ["click", "--repeat", str(clicks), "--delay", "1", forward if delta > 0 else back]
        return args
    if name == "drag":
        x1, y1, x2, y2 = (int(v) for v in action.args)
        args = ["mousemove", str(x1), str(y1), "mousedown", "1"]
        for i in range(1, DRAG_STEPS + 1):
            args += ["mousemove", str(x1 + (x2 - x1) * i // DRAG_STEPS),
                     str(y1 + (y2 - y1) * i // DRAG_STEPS)]
        return [*args, "mouseup", "1"]
    if name == "done":
        return []
    raise ValueError(f"no xdotool mapping for action {name!r}")


def _start_xvfb(size: tuple[int, int], timeout: float) -> tuple[subprocess.Popen[bytes], int]:
    read_fd, write_fd = os.pipe()
    width, height = size
    argv = ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24",
            "-nolisten", "tcp", "-noreset"]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - a file, not a pipe: a chatty Xvfb must never block on one
    try:
        proc = subprocess.Popen(argv, pass_fds=(write_fd,), env={"PATH": "/usr/bin:/bin"},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                process_group=0)
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        log.close()
        raise DisplayUnavailable(f"cannot start Xvfb ({exc}); run `{APT_HINT}`") from exc
    os.close(write_fd)
    try:
        number = _read_display_number(read_fd, proc, log, timeout)
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        os.close(read_fd)
        log.close()
    return proc, number


def _read_display_number(fd: int, proc: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> int:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise DisplayUnavailable(f"Xvfb did not become ready within {timeout:.0f} s")
        ready, _, _ = select.select([fd], [], [], left)
        chunk = os.read(fd, 64) if ready else b""
        if ready and not chunk:
            raise DisplayUnavailable(f"Xvfb exited before it was ready: {_log_tail(proc, log)}")
        data += chunk
    return int(data.strip())


def _log_tail(proc: subprocess.Popen[bytes], log: IO[bytes]) -> str:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2)
    log.seek(0)
    text = log.read().decode(errors="replace")
    return text.strip()[-500:] or f"exit status {proc.returncode}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members
