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


CONFIGS = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_example_config_loads_for_the_algorithm_it_names(config):
    import re

    from agentenv.trainers.config import load_config

    named = re.search(rf"agentenv train (\w+) --config examples/{re.escape(config.name)}", config.read_text())
    assert named, f"{config.name} says in a comment which `agentenv train ALGO --config` command runs it"
    cfg, explicit = load_config(named.group(1), str(config))
    assert cfg.algo == named.group(1) and {"env", "model", "out"} <= explicit
