"""A minimal stateful Python kernel, run inside a sandbox as a persistent process (one per episode).

One JSON line in (`{"code": ...}`), one JSON line out: the cell's stdout and stderr (including what
subprocesses wrote to the file descriptors), the repr of the last expression, and the error with a short
traceback of the cell's own frames. Variables persist across cells. SIGINT (the sandbox's per-cell time
limit) interrupts the cell and keeps the session.

Why not a Jupyter kernel: ZeroMQ, a connection file and a second process per session cost ~1 s to start
and several ms per cell (benchmarks/sandbox.py measures both); a pipe and `exec` is all an agent needs.
The protocol streams are private copies of fds 0/1, which are pointed at /dev/null and at per-cell
capture files, so `input()`, `print`, `os.write(1, ...)` or `sys.stdout = None` in user code cannot
corrupt or block the channel. Standard library only; runs under the host's interpreter.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import sys
import tempfile
import traceback

CELL_FILENAME = "<cell>"
MAX_STREAM_BYTES = 64 * 1024
MAX_VALUE_CHARS = 10_000
MAX_TRACEBACK_FRAMES = 6


def read_capped(fd: int) -> tuple[str, int]:
    """The head and tail of a capture file, and how many bytes were cut from the middle."""
    size = os.lseek(fd, 0, os.SEEK_END)
    os.lseek(fd, 0, os.SEEK_SET)
    if size <= MAX_STREAM_BYTES:
        data = os.read(fd, size)
        return data.decode("utf-8", "replace"), 0
    half = MAX_STREAM_BYTES // 2
    head = os.read(fd, half)
    os.lseek(fd, size - half, os.SEEK_SET)
    tail = os.read(fd, half)
    dropped = size - 2 * half
    return (head.decode("utf-8", "replace") + f"\n[... truncated {dropped} bytes ...]\n"
            + tail.decode("utf-8", "replace")), dropped


def capture_file() -> int:
    """An anonymous file (unlinked at once) to point fd 1 or 2 at for one cell; /tmp's size cap bounds it."""
    fd, path = tempfile.mkstemp(prefix="cell-")
    os.unlink(path)
    return fd


def short_traceback(exc: BaseException) -> str:
    """The exception with the cell's own frames only (the kernel's frames are noise to the agent)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__][-MAX_TRACEBACK_FRAMES:]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)] if frames else []
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


class Kernel:
    def __init__(self) -> None:
        self.proto_in = os.fdopen(os.dup(0), "rb")
        self.proto_out = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        self.namespace: dict = {"__name__": "__main__", "__builtins__": __builtins__}
        self.cells = 0

    def serve(self) -> None:
        self.send({"ready": True, "python": sys.version.split()[0]})
        for line in self.proto_in:
            if not line.strip():
                continue  # a blank line asks for nothing (the host uses one to collect the greeting)
            try:
                request = json.loads(line)
                code = request["code"]
                if not isinstance(code, str):
                    raise TypeError("code must be a string")
            except (ValueError, KeyError, TypeError) as exc:
                self.send({"error": {"type": "BadRequest", "message": str(exc), "traceback": ""}})
                continue
            self.send(self.run_cell(code))

    def send(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self.proto_out, view):]

    def run_cell(self, code: str) -> dict:
        self.cells += 1
        out_fd, err_fd = capture_file(), capture_file()
        saved = os.dup(1), os.dup(2)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        value, error = None, None
        try:
            value = self.execute(code)
        except KeyboardInterrupt as exc:
            error = {"type": "KeyboardInterrupt",
                     "message": "interrupted: the cell hit its time limit; the session and its variables are kept",
                     "traceback": short_traceback(exc)}
        except SystemExit as exc:
            error = {"type": "SystemExit", "message": f"the cell called exit({exc.code!r}); the session is kept",
                     "traceback": ""}
        except BaseException as exc:
            error = {"type": type(exc).__name__, "message": str(exc), "traceback": short_traceback(exc)}
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
        stdout, out_dropped = read_capped(out_fd)
        stderr, err_dropped = read_capped(err_fd)
        for fd in (out_fd, err_fd):
            os.close(fd)
        return {"stdout": stdout, "stderr": stderr, "value": value, "error": error,
                "dropped": out_dropped + err_dropped, "cell": self.cells}

    def execute(self, code: str) -> str | None:
        tree = ast.parse(code, filename=CELL_FILENAME, mode="exec")
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if last is not None:
            tree.body.pop()
        exec(compile(tree, CELL_FILENAME, "exec"), self.namespace)
        if last is None:
            return None
        result = eval(compile(ast.Expression(last.value), CELL_FILENAME, "eval"), self.namespace)
        if result is None:
            return None
        self.namespace["_"] = result
        text = repr(result)
        if len(text) > MAX_VALUE_CHARS:
            text = text[: MAX_VALUE_CHARS // 2] + " ... " + text[-MAX_VALUE_CHARS // 2:]
        return text


if __name__ == "__main__":
    Kernel().serve()
