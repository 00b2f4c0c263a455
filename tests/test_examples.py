"""Every script in examples/ runs (on its own tiny settings) and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script):
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "success rate" in done.stdout


def test_custom_env_example_is_under_60_lines():
    assert len((Path(__file__).parents[1] / "examples" / "custom_env.py").read_text().splitlines()) < 60
