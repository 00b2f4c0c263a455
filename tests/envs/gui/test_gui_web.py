"""The web tasks at the pixel level on a real Chromium: clicks by coordinates reach the element under them,
observations carry PNG screenshots in the OpenAI image format, the pixel expert solves tasks, and
screenshots survive collection into the trajectory store."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from agentenv.collector import collect
from agentenv.envs.gui.web import GuiMiniWoBEnv, GuiWebShopEnv
from agentenv.envs.web.miniwob import MiniWoBEnv
from agentenv.messages import image_bytes, observation_problems
from agentenv.policies import ExpertPolicy
from agentenv.store import TrajectoryStore

pytestmark = pytest.mark.integration

BUTTON_BOX_JS = """(label) => {
  const el = [...document.querySelectorAll('#area button')].find(b => b.innerText.trim() === label);
  const r = el.getBoundingClientRect();
  return [Math.round(r.x + r.width / 2), Math.round(r.y + r.height / 2)];
}"""


def _screen(obs: dict) -> Image.Image:
    content = obs["messages"][-1]["content"]
    assert isinstance(content, list) and content[-1]["type"] == "image_url"
    return Image.open(io.BytesIO(image_bytes(content[-1])))


def test_a_click_at_the_buttons_coordinates_presses_it() -> None:
    env = GuiMiniWoBEnv("click-button")
    try:
        obs, info = env.reset(seed=3)
        assert observation_problems(obs) == []
        screen = _screen(obs)
        assert screen.format == "PNG" and screen.size == env.viewport
        assert "base64" not in obs["messages"][0]["content"]  # the system prompt is text
        label = info["utterance"].split('"')[1] if '"' in info["utterance"] else info["utterance"].split()[-1]
        label = label.rstrip(".")
        x, y = env.browser.call(env.session.page.evaluate(BUTTON_BOX_JS, label))
        obs, reward, terminated, _, step_info = env.step(f"I see it.\nclick({x}, {y})")
        assert terminated and reward == 1.0 and step_info["won"], (info["utterance"], x, y)

        env.reset(seed=3)
        _, reward, terminated, _, _ = env.step("click(490, 390)")  # empty space: nothing happens
        assert (reward, terminated) == (0.0, False)
        _, reward, terminated, _, step_info = env.step("done()")
        assert terminated and reward == 0.0 and not step_info["won"]
    finally:
        env.close()


@pytest.mark.parametrize(("action", "error"), [
    ("click(500, 10)", "outside the 500x400 screen"),
    ('key("hyper+x")', "unknown modifier"),
    ("click(1)", "takes 2 argument"),
    ("fill(1, 'x')", "unknown action"),
])
def test_bad_pixel_actions_are_error_observations(action: str, error: str) -> None:
    env = GuiMiniWoBEnv("click-test")
    try:
        env.reset(seed=0)
        obs, reward, terminated, _, info = env.step(action)
        assert error in obs["messages"][0]["content"] and not info["action_valid"]
        assert (reward, terminated) == (0.0, False)
    finally:
        env.close()


@pytest.mark.parametrize("task", ["click-test", "click-button", "enter-text", "focus-text", "login-user",
                                  "click-checkboxes", "enter-password", "click-option"])
def test_the_pixel_expert_solves_scripted_tasks(task: str) -> None:
    env = GuiMiniWoBEnv(task)
    try:
        for seed in (0, 1):
            env.reset(seed=seed)
            actions, reward, terminated = [], 0.0, False
            for _ in range(12):
                action = env.expert_action()
                assert action is not None, f"{task} seed {seed}: no pixel action after {actions}"
                actions.append(action)
                _, reward, terminated, _, info = env.step(action)
                assert info.get("error") is None, (actions, info)
                if terminated:
                    break
            assert terminated and reward > 0, f"{task} seed {seed}: {actions} -> {reward}"
    finally:
        env.close()


def test_typing_and_keys_reach_the_focused_field() -> None:
    env = GuiMiniWoBEnv("enter-text")
    try:
        _, info = env.reset(seed=5)
        word = info["utterance"].split('"')[1]
        click = env.expert_action()
        assert click is not None and click.startswith("click(")
        env.step(click)
        env.step('type("wrong")')
        env.step('key("ctrl+a")')
        env.step(f"type({word!r})")
        value = env.browser.call(env.session.page.evaluate("() => document.querySelector('#area input').value"))
        assert value == word
    finally:
        env.close()


def test_the_store_at_the_pixel_level_is_bought_by_the_expert() -> None:
    env = GuiWebShopEnv(split="test")
    try:
        obs, _ = env.reset(seed=4)
        assert _screen(obs).size == (1024, 768)
        reward, terminated, actions = 0.0, False, []
        for _ in range(25):
            action = env.expert_action()
            assert action is not None, actions
            actions.append(action)
            obs, reward, terminated, _, info = env.step(action)
            if terminated:
                break
        assert terminated and reward >= 0.9, (actions, info)
    finally:
        env.close()


def test_text_env_screenshots_survive_collection_into_the_store(tmp_path) -> None:
    env = MiniWoBEnv("click-test", screenshot=True)
    try:
        obs, _ = env.reset(seed=0)
        assert observation_problems(obs) == [] and _screen(obs).size == (500, 400)
        assert '[1] button "Click Me!"' in obs["messages"][-1]["content"][0]["text"]
    finally:
        env.close()
    summary, trajectories = collect("agentenv/GUI-MiniWoB-ClickTest-v0", ExpertPolicy(), n_tasks=2,
                                             concurrency=2, out=tmp_path / "store")
    assert summary.successes == 2, summary
    stored = {t.trajectory_id: t for t in TrajectoryStore(tmp_path / "store").episodes()}
    assert len(stored) == 2
    for traj in trajectories:
        first = stored[traj.trajectory_id].turns[0]
        screen = Image.open(io.BytesIO(image_bytes(first.observation[-1]["content"][-1])))
        assert screen.size == (500, 400) and first.action.startswith("click(")
