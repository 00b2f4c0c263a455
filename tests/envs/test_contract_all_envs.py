"""Every registered environment keeps the agentenv contract, checked by the same tool users run."""

import pytest

import agentenv


# (test modules register fixture envs with family "test"; deliberately broken ones live outside the namespace)
@pytest.mark.parametrize("env_id", [i.id for i in agentenv.registered_envs() if i.family != "test"])
def test_registered_env_passes_check_env(env_id):
    agentenv.check_env(env_id).raise_if_failed()


def test_the_built_in_envs_are_among_those_checked():
    ids = {info.id for info in agentenv.registered_envs()}
    assert {"agentenv/GuessNumber-v0", "agentenv/Maze-v0"} <= ids
