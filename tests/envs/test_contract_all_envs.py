"""Every registered environment keeps the agentenv contract, checked by the same tool users run."""

import pytest

import agentenv

# (test modules register fixture envs with family "test"; deliberately broken ones live outside the namespace)
# MiniWoB++'s 130 ids share one class: three of them stand for the rest here (tests/envs/web loads every page);
# so do its 130 pixel twins and the desktop tasks (tests/envs/gui runs every desktop task's expert).
# Dream envs need a world model and recorded starts: tests/envs/web/test_dream.py checks one with them.
SAMPLES = {
    "agentenv/Dream-": set(),
    "agentenv/MiniWoB-": {"agentenv/MiniWoB-ClickTest-v0", "agentenv/MiniWoB-EnterText-v0",
                          "agentenv/MiniWoB-ClickCheckboxes-v0"},
    "agentenv/GUI-MiniWoB-": {"agentenv/GUI-MiniWoB-ClickButton-v0"},
    "agentenv/Desktop-": {"agentenv/Desktop-TypeText-v0"},
}
MINIWOB_SAMPLE = SAMPLES["agentenv/MiniWoB-"]


def _checked(env_id: str) -> bool:
    return all(not env_id.startswith(prefix) or env_id in sample for prefix, sample in SAMPLES.items())


CHECKED = [i.id for i in agentenv.registered_envs() if i.family != "test" and _checked(i.id)]


@pytest.mark.parametrize("env_id", CHECKED)
def test_registered_env_passes_check_env(env_id):
    agentenv.check_env(env_id).raise_if_failed()


def test_the_built_in_envs_are_among_those_checked():
    ids = {info.id for info in agentenv.registered_envs()}
    assert {"agentenv/GuessNumber-v0", "agentenv/Maze-v0"} <= ids
    assert all(ids >= sample for sample in SAMPLES.values())
