"""Shared test configuration: unit tests are the default tier; see pyproject for the markers."""

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.iter_markers(name) for name in ("integration", "slow", "gpu")):
            item.add_marker(pytest.mark.unit)
