"""Shared test configuration: unit tests are the default tier; see pyproject for the markers."""

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
