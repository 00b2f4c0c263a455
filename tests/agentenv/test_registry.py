"""Registration on gymnasium's registry: ids, did-you-mean errors, and third-party plugins via entry points."""

import logging
import subprocess
import sys
import textwrap

import gymnasium as gym
import pytest

import agentenv
import agentenv.registry
from agentenv.envs.puzzles.guess_number import GuessNumberEnv
from agentenv.envs.puzzles.maze import MazeEnv

PLUGIN_ENV = textwrap.dedent(
    '''
    """A third-party env package, as pip would install it."""
    from agentenv import Env, StepResult, observation
    from agentenv.registry import register as _register


    class FakePluginEnv(Env):
        family = "fake"

        def _reset(self, options):
            return observation("hello from a plugin"), {}

        def _step(self, action):
            return StepResult(observation("done"), 1.0, terminated=True)


    def register():
        _register("agentenv/FakePlugin-v0", "fakeplugin_mod:FakePluginEnv", family="fake", description="a plugin")
    '''
)


def _install_plugin(tmp_path, monkeypatch, dist: str, module: str, source: str) -> None:
    """Lay out an installed distribution (dist-info with an entry point) plus its module, and put it on sys.path."""
    info = tmp_path / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[agentenv.envs]\n{dist} = {module}:register\n")
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


@pytest.fixture
def forget_fake_plugin():
    """Unregister what the plugin tests add, so other tests see only the built-ins."""
    yield
    gym.registry.pop("agentenv/FakePlugin-v0", None)
    agentenv.registry._info.pop("agentenv/FakePlugin-v0", None)  # no public unregister: tests only
    sys.modules.pop("fakeplugin_mod", None)
    sys.modules.pop("brokenplugin_mod", None)


def test_make_with_namespace_builds_the_unwrapped_env():
    env = agentenv.make("agentenv/GuessNumber-v0")
    assert type(env) is GuessNumberEnv


def test_make_without_namespace_finds_the_agentenv_env():
    env = agentenv.make("Maze-v0")
    assert type(env) is MazeEnv


def test_make_passes_keyword_arguments_to_the_env():
    env = agentenv.make("agentenv/Maze-v0", size=6)
    assert env.size == 6


def test_unknown_id_suggests_the_close_match():
    with pytest.raises(agentenv.UnknownEnvError) as e:
        agentenv.make("GuesNumber")
    assert "unknown env 'GuesNumber'; did you mean agentenv/GuessNumber-v0" in str(e.value)  # the closest first
    assert "`agentenv envs`" in str(e.value)


def test_unknown_id_without_close_match_has_no_suggestion():
    with pytest.raises(agentenv.UnknownEnvError) as e:
        agentenv.make("Zzzzqqq-v9")
    assert "did you mean" not in str(e.value)


def test_registered_envs_lists_the_built_ins_with_family_and_description():
    infos = {i.id: i for i in agentenv.registered_envs()}
    for env_id in ("agentenv/GuessNumber-v0", "agentenv/Maze-v0"):
        assert infos[env_id].family == "puzzle"
        assert infos[env_id].description
        assert infos[env_id].source == "agentenv"
    assert infos["agentenv/Maze-v0"].entry_point == "agentenv.envs.puzzles.maze:MazeEnv"


def test_plugin_entry_point_registers_a_third_party_env(tmp_path, monkeypatch, forget_fake_plugin):
    _install_plugin(tmp_path, monkeypatch, "fakeplugin", "fakeplugin_mod", PLUGIN_ENV)
    agentenv.registry.load_plugins(force=True)

    env = agentenv.make("FakePlugin-v0")
    obs, _ = env.reset(seed=0)
    assert obs["messages"][0]["content"] == "hello from a plugin"
    infos = {i.id: i for i in agentenv.registered_envs()}
    assert infos["agentenv/FakePlugin-v0"].family == "fake"
    assert infos["agentenv/FakePlugin-v0"].source == "fakeplugin"
    assert "agentenv/Maze-v0" in infos  # reloading kept the built-ins


def test_broken_plugin_logs_a_warning_and_does_not_raise(tmp_path, monkeypatch, caplog, forget_fake_plugin):
    _install_plugin(tmp_path, monkeypatch, "brokenplugin", "brokenplugin_mod", "raise RuntimeError('boom')\n")
    with caplog.at_level(logging.WARNING, logger="agentenv.registry"):
        agentenv.registry.load_plugins(force=True)
    messages = [r.getMessage() for r in caplog.records]
    assert any("brokenplugin" in m and "boom" in m for m in messages)
    assert type(agentenv.make("agentenv/Maze-v0")) is MazeEnv


def test_gymnasium_make_builds_a_registered_env():
    env = gym.make("agentenv/Maze-v0")
    assert type(env.unwrapped) is MazeEnv
    obs, _ = env.reset(seed=0)
    assert obs["admissible"]


def test_gymnasium_make_works_right_after_importing_agentenv():
    code = "import agentenv, gymnasium; env = gymnasium.make('agentenv/GuessNumber-v0'); env.reset(seed=0)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
