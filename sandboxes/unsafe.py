"""The `subprocess` backend: the same supervisor as a plain child process, isolating nothing.

For debugging an environment on a machine without bubblewrap or Docker. It still applies the per-command
limits (rlimits, wall deadline, output caps) and reaps what commands leave behind (the supervisor is a
child subreaper), but the code it runs sees the host's files, network and processes. It warns every time
a sandbox starts, and nothing picks it by default.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping

from agentenv.sandboxes.base import SandboxLimits
from agentenv.sandboxes.supervised import SUPERVISOR_SOURCE, PipeTransport, SupervisedSandbox, Transport

PR_SET_PDEATHSIG = 1


class UnsafeWarning(RuntimeWarning):
    """Code is about to run with no isolation."""


class SubprocessSandbox(SupervisedSandbox):
    backend = "subprocess"

    def __init__(self, limits: SandboxLimits | None = None, *, env: Mapping[str, str] | None = None) -> None:
        super().__init__(limits, env)
        self.directory = tempfile.mkdtemp(prefix="agentenv-unsafe-")
        os.makedirs(os.path.join(self.directory, "tmp"))
        self.base_env["TMPDIR"] = self.home
        warnings.warn(
            "the subprocess sandbox isolates nothing (host files, network and processes are reachable): "
            "use it only to debug, never for model-written code you have not read",
            UnsafeWarning,
            stacklevel=2,
        )
        self.process: subprocess.Popen | None = None
        self.enforcement = {"processes": "none", "memory": "RLIMIT_AS per process",
                            "cpu_time": "RLIMIT_CPU per command", "disk": "RLIMIT_FSIZE per file",
                            "wall_time": "supervisor deadline + host deadline", "network": "none"}
        try:
            self._start()
        except BaseException:
            self._kill()
            raise

    @property
    def home(self) -> str:
        return os.path.join(self.directory, "tmp")

    def _launch(self) -> Transport:
        def before_exec() -> None:
            with contextlib.suppress(Exception):
                ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

        workspace = os.path.join(self.directory, "workspace")
        os.makedirs(workspace)
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(SUPERVISOR_SOURCE), "--workspace", workspace, "--tmp", self.home],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            preexec_fn=before_exec, start_new_session=True, cwd=workspace,
        )
        assert self.process.stdin and self.process.stdout
        return PipeTransport(os.dup(self.process.stdin.fileno()), os.dup(self.process.stdout.fileno()),
                             watch_pid=self.process.pid)

    def _signal_kill(self) -> None:
        process = self.process
        if process is not None and not self.closed and process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    def _kill(self) -> None:
        process = self.process
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            for stream in (process.stdin, process.stdout):
                with contextlib.suppress(Exception):
                    stream.close()  # type: ignore[union-attr]
        shutil.rmtree(self.directory, ignore_errors=True)
