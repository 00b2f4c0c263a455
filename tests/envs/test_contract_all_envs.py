"""Every registered environment keeps the agentenv contract, checked by the same tool users run."""

import pytest

import agentenv

# (test modules register fixture envs with family "test"; deliberately broken ones live outside the namespace)
# MiniWoB++'s 130 ids share one class: three of them stand for the rest here (tests/envs/web loads every page).
MINIWOB_SAMPLE = {
    "agentenv/MiniWoB-ClickTest-v0", "agentenv/MiniWoB-EnterText-v0", "agentenv/MiniWoB-ClickCheckboxes-v0",
}
CHECKED = [i.id for i in agentenv.registered_envs()
           if i.family != "test" and (not i.id.startswith("agentenv/MiniWoB-") or i.id in MINIWOB_SAMPLE)]


@pytest.mark.parametrize("env_id", CHECKED)
def test_registered_env_passes_check_env(env_id):
    agentenv.check_env(env_id).raise_if_failed()


def test_the_built_in_envs_are_among_those_checked():
    ids = {info.id for info in agentenv.registered_envs()}
    assert {"agentenv/GuessNumber-v0", "agentenv/Maze-v0"} <= ids
    assert ids >= MINIWOB_SAMPLE
