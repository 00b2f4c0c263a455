"""Shared test configuration: unit tests are the default tier; see pyproject for the markers."""

from collections.abc import Callable
from pathlib import Path

import pytest

from agentenv.policies.catalog import build_tiny_model


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.iter_markers(name) for name in ("integration", "slow", "gpu")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-wide LlamaForCausalLM (random weights) saved with the SmolLM2 tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Runs ``agentenv ARGV...`` in-process: ``cli("envs")`` gives (exit code, stdout, stderr)."""
    from agentenv.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            main(list(argv))
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
