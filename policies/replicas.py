"""Several local policy servers as child processes: ``agentenv serve-policy --replicas N``.

:class:`Replicas` starts N copies of ``agentenv serve-policy`` (one replica each, any backend) on
consecutive ports from ``port`` (or on free ports with ``port=0``), waits until every one has printed
its ready line, and stops them all (SIGTERM to each child's process group, SIGKILL after
``stop_timeout``) on :meth:`~Replicas.stop`, on leaving a ``with`` block and at interpreter exit. Its
:attr:`~Replicas.endpoints` string is what ``--policy`` and :func:`.balanced.policy_client` take.

Parallelism inside one replica is vLLM's own: ``tensor_parallel_size`` and ``data_parallel_size`` become
vLLM's ``--tensor-parallel-size`` and ``--data-parallel-size``. On a machine with NVIDIA GPUs each vLLM
replica gets its own block of ``tensor_parallel_size * data_parallel_size`` consecutive GPUs through
``CUDA_VISIBLE_DEVICES`` (replica i gets the i-th block of the devices visible to this process), and too
few GPUs for all replicas is an error before anything starts. The embedded and replay servers run on one
device, so asking them for parallelism is an error too, never ignored.

The API key reaches the children through ``AGENTENV_API_KEY``, not their command lines (which ``ps`` shows).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import TextIO

from agentenv.serving import serve_until_signal

from .vllm_server import _descendants, group_processes

BACKENDS = ("embedded", "replay", "vllm")
_READY = re.compile(r"^agentenv policy server \([^)]*\): (http\S+)")
#: vLLM's spellings of the parallel sizes, which ``--vllm-arg`` must not carry (the GPU placement counts them)
_PARALLEL_FLAGS = ("--tensor-parallel-size", "-tp", "--data-parallel-size", "-dp")


class ReplicaError(RuntimeError):
    """A replica could not be started, or one of them died."""


def check_options(backend: str, replicas: int = 1, *, tensor_parallel_size: int = 1, data_parallel_size: int = 1,
                  vllm_args: Sequence[str] = (), tokenizer: str | None = None) -> None:
    """Refuse options the chosen backend would ignore, with the reason (``ValueError``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
    if replicas < 1:
        raise ValueError(f"--replicas must be >= 1, got {replicas}")
    for flag, size in (("--tensor-parallel-size", tensor_parallel_size), ("--data-parallel-size", data_parallel_size)):
        if size < 1:
            raise ValueError(f"{flag} must be >= 1, got {size}")
        if size != 1 and backend != "vllm":
            raise ValueError(f"{flag} {size}: only the vllm backend splits a model over devices; the {backend} "
                             "server runs on one (use --replicas for more copies)")
    if vllm_args and backend != "vllm":
        raise ValueError(f"--vllm-arg applies to the vllm backend, not {backend}")
    for arg in vllm_args:
        flag = arg.split("=")[0]
        if flag in _PARALLEL_FLAGS:
            raise ValueError(f"pass {flag} as agentenv's own --tensor-parallel-size / --data-parallel-size (they "
                             "also decide which GPUs each replica gets), not --vllm-arg")
        if flag in ("--pipeline-parallel-size", "-pp") and replicas > 1:
            raise ValueError(f"{flag} with --replicas: each replica's GPUs are counted as tensor x data parallel "
                             "size; run the pipeline-parallel servers one by one")
    if tokenizer and backend != "replay":
        raise ValueError(f"--tokenizer applies to the replay backend; the {backend} server uses its model's own")


def vllm_parallel_args(tensor_parallel_size: int = 1, data_parallel_size: int = 1) -> list[str]:
    """vLLM's flags for the parallel sizes (none for the default of 1)."""
    args = []
    if tensor_parallel_size != 1:
        args += ["--tensor-parallel-size", str(tensor_parallel_size)]
    if data_parallel_size != 1:
        args += ["--data-parallel-size", str(data_parallel_size)]
    return args


def visible_gpus() -> list[str] | None:
    """The NVIDIA devices this process may use (``CUDA_VISIBLE_DEVICES`` when set, else those
    ``nvidia-smi -L`` lists), or None on a machine without them."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if listed.returncode != 0:
        return None
    return [str(i) for i, _ in enumerate(line for line in listed.stdout.splitlines() if line.startswith("GPU "))]


def gpu_blocks(replicas: int, per_replica: int, devices: Sequence[str]) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` for each replica: consecutive blocks of ``per_replica`` of ``devices``."""
    need = replicas * per_replica
    if len(devices) < need:
        raise ValueError(f"{replicas} replicas x {per_replica} GPUs each (tensor x data parallel size) need {need} "
                         f"GPUs; {len(devices)} are visible ({','.join(devices) or 'none'})")
    return [",".join(devices[i * per_replica:(i + 1) * per_replica]) for i in range(replicas)]


class Replicas:
    """N local replicas of one policy server; see the module docstring.

    ``with Replicas("replay", "runs/g", 2) as servers: policy_client(servers.urls)``. ``gpus``: the devices
    to spread vLLM replicas over (default: :func:`visible_gpus`; ``[]`` places nothing). ``echo``: where
    the children's output goes, each line prefixed with its replica (default: kept, and shown in errors).
    """

    def __init__(self, backend: str, model: str, replicas: int = 2, *, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None, served_name: str | None = None, max_batch_size: int = 16,
                 tokenizer: str | None = None, vllm_args: Sequence[str] = (), tensor_parallel_size: int = 1,
                 data_parallel_size: int = 1, gpus: Sequence[str] | None = None, startup_timeout: float = 600.0,
                 stop_timeout: float = 30.0, echo: TextIO | None = None, python: str | None = None):
        check_options(backend, replicas, tensor_parallel_size=tensor_parallel_size,
                      data_parallel_size=data_parallel_size, vllm_args=vllm_args, tokenizer=tokenizer)
        if port and port + replicas - 1 > 65535:
            raise ValueError(f"ports {port}..{port + replicas - 1} do not exist; pick a lower --port or 0")
        self.backend, self.model, self.replicas = backend, str(model), replicas
        self.host, self.port, self.api_key = host, port, api_key
        self.served_name, self.max_batch_size, self.tokenizer = served_name, max_batch_size, tokenizer
        self.vllm_args = list(vllm_args)
        self.tensor_parallel_size, self.data_parallel_size = tensor_parallel_size, data_parallel_size
        self.startup_timeout, self.stop_timeout = startup_timeout, stop_timeout
        self.echo, self.python = echo, python or sys.executable
        self.devices: list[str | None] = [None] * replicas
        if backend == "vllm":
            found = visible_gpus() if gpus is None else list(gpus)
            if found:
                self.devices = list(gpu_blocks(replicas, tensor_parallel_size * data_parallel_size, found))
        self.urls: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._outputs: list[deque[str]] = []
        self._ready: list[str | None] = []
        self._readers: list[threading.Thread] = []

    # ----- what each child gets --------------------------------------------------------------------------
    def command(self, index: int) -> list[str]:
        """Replica ``index``'s command line: ``agentenv serve-policy`` for one replica."""
        cmd = [self.python, "-m", "agentenv.cli", "serve-policy", "--backend", self.backend, "--model", self.model,
               "--host", self.host, "--port", str(self.port + index if self.port else 0)]
        if self.served_name:
            cmd += ["--served-name", self.served_name]
        if self.backend == "embedded":
            cmd += ["--max-batch-size", str(self.max_batch_size)]
        if self.backend == "replay" and self.tokenizer:
            cmd += ["--tokenizer", self.tokenizer]
        if self.backend == "vllm":
            cmd += ["--tensor-parallel-size", str(self.tensor_parallel_size),
                    "--data-parallel-size", str(self.data_parallel_size)]
            cmd += [f"--vllm-arg={arg}" for arg in self.vllm_args]
        return cmd

    def child_env(self, index: int) -> dict[str, str]:
        """Replica ``index``'s environment: this one's, with its GPUs and the API key."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("AGENTENV_API_KEY", None)
        if self.api_key:
            env["AGENTENV_API_KEY"] = self.api_key
        device = self.devices[index]
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        return env

    # ----- life cycle --------------------------------------------------------------------------------------
    @property
    def endpoints(self) -> str:
        """The replicas' ``/v1`` URLs joined by commas, as ``--policy`` takes them."""
        return ",".join(self.urls)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def start(self) -> Replicas:
        """Start every replica and wait until all of them serve; on any failure stop them all and raise
        :class:`ReplicaError` with the failing one's last output."""
        if self._procs:
            return self
        atexit.register(self.stop)
        try:
            for i in range(self.replicas):
                self._spawn(i)
            deadline = time.monotonic() + self.startup_timeout
            while not all(self._ready):
                dead = self.failed()
                if dead is not None:
                    index, code = dead
                    raise ReplicaError(f"replica {index} exited with status {code} before it was ready:\n"
                                       + self.output(index))
                if time.monotonic() > deadline:
                    waiting = [i for i, url in enumerate(self._ready) if url is None]
                    raise ReplicaError(f"replicas {waiting} were not ready within {self.startup_timeout:g} s; "
                                       f"last output of replica {waiting[0]}:\n{self.output(waiting[0])}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        self.urls = [url for url in self._ready if url is not None]
        return self

    def _spawn(self, index: int) -> None:
        try:
            proc = subprocess.Popen(self.command(index), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=self.child_env(index),
                                    start_new_session=True)  # its own group: stop() reaches what it starts
        except OSError as e:
            raise ReplicaError(f"could not start replica {index} with {self.python}: {e}") from e
        self._procs.append(proc)
        self._outputs.append(deque(maxlen=200))
        self._ready.append(None)
        reader = threading.Thread(target=self._read, args=(index, proc), daemon=True,
                                  name=f"agentenv-replica-{index}")
        reader.start()
        self._readers.append(reader)

    def _read(self, index: int, proc: subprocess.Popen[bytes]) -> None:
        """Keeps draining the child's output (a full pipe would stop it) and spots its ready line."""
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._outputs[index].append(line)
            ready = _READY.match(line)
            if ready and self._ready[index] is None:
                self._ready[index] = ready.group(1).rstrip("/")
            if self.echo is not None:
                with contextlib.suppress(ValueError, OSError):
                    print(f"[replica {index}] {line}", file=self.echo, flush=True)

    def output(self, index: int, lines: int = 40) -> str:
        """The last lines replica ``index`` wrote."""
        return "\n".join(list(self._outputs[index])[-lines:])

    def failed(self) -> tuple[int, int] | None:
        """(index, exit status) of the first replica that has exited, or None while all run."""
        for i, proc in enumerate(self._procs):
            code = proc.poll()
            if code is not None:
                return i, code
        return None

    def stop(self) -> None:
        """Stop every replica and all it started: SIGTERM to each child's process group, SIGKILL to whatever
        is left after ``stop_timeout`` seconds. Idempotent."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        procs = self._procs
        if not procs:
            return
        family = {p.pid: _descendants(p.pid) for p in procs}  # vLLM leaves the group: find it now
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and any(p.poll() is None or group_processes(p.pid) for p in procs):
            time.sleep(0.1)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            for pid in family[proc.pid]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for reader in self._readers:
            reader.join(timeout=5)
        for proc in procs:
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs, self._readers = [], []

    def __enter__(self) -> Replicas:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def serve_forever(self, out: TextIO | None = None) -> int:
        """Start, print ``agentenv policy servers (BACKEND x N): URL,URL,...`` to ``out`` (stdout), and serve
        until SIGINT/SIGTERM (exit status 0) or until a replica dies (1, after stopping the others)."""
        out = out or sys.stdout

        def watch() -> int:
            print(f"agentenv policy servers ({self.backend} x {self.replicas}): {self.endpoints}", file=out,
                  flush=True)
            while (dead := self.failed()) is None:
                time.sleep(0.2)
            index, code = dead
            print(f"agentenv policy servers: replica {index} ({self.urls[index]}) exited with status {code}; "
                  f"stopping the others. Its last output:\n{self.output(index)}", file=sys.stderr, flush=True)
            return 1

        return serve_until_signal(self.start, watch, self.stop)
