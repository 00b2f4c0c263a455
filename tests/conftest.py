"""Shared test configuration: unit tests are the default tier; see pyproject for the markers."""

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentenv.policies.catalog import build_tiny_model


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # release-size reliability runs (--long, or a soak of a chosen length) take hours, not the 300 s default
    long = config.getoption("--long") or os.environ.get("AGENTENV_SOAK_EPISODES")
    for item in items:
        if not any(item.iter_markers(name) for name in ("integration", "slow", "gpu")):
            item.add_marker(pytest.mark.unit)
        if long and "tests/reliability/" in item.nodeid:
            item.add_marker(pytest.mark.timeout(8 * 3600))


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


# ----- reliability §4: each row's test records its measures for scripts/reliability_table.py --------------
class RowMeasures:
    """What a reliability test measured (retries, p99 latencies, leaks found), and the backend it ran on."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.backend = ""

    def measure(self, **values: object) -> None:
        self.values.update(values)


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[RowMeasures]:
    """``reliability.measure(retries=3, p99_s=0.4)``; kept in ``$AGENTENV_RELIABILITY_LOG`` when it is set."""
    row = RowMeasures()
    yield row
    _log_reliability({"nodeid": request.node.nodeid, "backend": row.backend, "measures": row.values})


def _log_reliability(record: dict[str, object]) -> None:
    path = os.environ.get("AGENTENV_RELIABILITY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str) + "\n")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _log_reliability({"nodeid": report.nodeid, "outcome": report.outcome,
                          "duration_s": round(report.duration, 3)})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="run the reliability soak and churn tests (L02, L03, L04...) at their release-check "
                          "sizes instead of the short CI defaults (docs/reliability.md)")


@pytest.fixture
def long_run(request: pytest.FixtureRequest) -> bool:
    """True under ``pytest --long``: reliability tests use their full sizes (10k episodes, 10k sandboxes)."""
    return bool(request.config.getoption("--long"))
