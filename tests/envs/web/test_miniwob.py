"""MiniWoB++ on a real Chromium: every task page is an env id, episodes are seeded and rewarded by the
page's own JavaScript, and bad actions come back as error observations."""

from __future__ import annotations

import re

import pytest

import agentenv
from agentenv.envs.web.miniwob import MiniWoBEnv, env_id, task_names


def test_every_task_page_is_registered():
    names = task_names()
    assert len(names) >= 100
    ids = {info.id for info in agentenv.registered_envs() if info.family == "web"}
    assert {env_id(name) for name in names} <= ids
    assert len({env_id(name) for name in names}) == len(names)


def test_click_test_is_solved_and_rewarded_by_the_page():
    env = MiniWoBEnv("click-test")
    try:
        obs, info = env.reset(seed=1)
        assert info["utterance"] == "Click the button." and '[1] button "Click Me!"' in obs["messages"][-1]["content"]
        _, reward, terminated, _, step_info = env.step("click(1)")
        assert terminated and reward == 1.0 and step_info["won"]
    finally:
        env.close()


def test_enter_text_and_seeds():
    env = MiniWoBEnv("enter-text")
    try:
        _, first = env.reset(seed=7)
        _, again = env.reset(seed=7)
        _, other = env.reset(seed=8)
        assert first["utterance"] == again["utterance"] != other["utterance"]
        word = re.search(r'"(.*)"', other["utterance"]).group(1)
        assert env.step(f'fill(1, "{word}")')[1] == 0.0
        _, reward, terminated, _, _ = env.step("click(2)")
        assert terminated and reward == 1.0
    finally:
        env.close()


def test_leaving_the_task_page_fails_the_task_instead_of_breaking_the_env():
    env = MiniWoBEnv("click-tab")  # preloaded from about:blank, so go_back() leaves the task page
    try:
        env.reset(seed=5)
        _, reward, terminated, _, info = env.step("go_back()")
        assert terminated and reward == -1.0 and not info["won"] and "left the task page" in info["reason"]
        obs, _ = env.reset(seed=5)
        assert "[1] tablist" in obs["messages"][-1]["content"]
    finally:
        env.close()


def test_the_random_agent_acts_on_the_page_elements():
    env = MiniWoBEnv("enter-text")
    try:
        env.reset(seed=2)
        candidates = env.action_candidates()
        assert candidates is not None and "click(2)" in candidates
        word = re.search(r'"(.*)"', env.utterance).group(1)
        assert f'fill(1, "{word}")' in candidates and 'press("Enter")' in candidates
        assert all(env.step(c)[4]["action_valid"] for c in candidates[:1])
    finally:
        env.close()


def test_a_wrong_answer_is_penalised_by_the_page():
    env = MiniWoBEnv("click-button")
    try:
        obs, info = env.reset(seed=3)
        target = re.search(r'"(.*)"', info["utterance"]).group(1)
        wrong = next(line for line in obs["messages"][-1]["content"].splitlines()
                     if line.strip().startswith("[") and "button" in line and f'"{target}"' not in line)
        _, reward, terminated, _, _ = env.step(f"click({wrong.split(']')[0].strip(' [')})")
        assert terminated and reward < 0
    finally:
        env.close()


@pytest.mark.parametrize("action,error", [("click(99)", "no element with id 99"), ("hover(1)", "unknown action")])
def test_bad_actions_are_error_observations(action, error):
    env = MiniWoBEnv("click-test")
    try:
        env.reset(seed=1)
        obs, reward, terminated, _, _ = env.step(action)
        assert error in obs["messages"][-1]["content"] and reward == 0 and not terminated
    finally:
        env.close()


def test_every_task_page_resets():
    """All the task pages of the package start an episode and show an instruction and a page (four
    episodes at a time, each in its own context of the one browser)."""
    from concurrent.futures import ThreadPoolExecutor

    def reset(task: str) -> tuple[str, str | None]:
        env = MiniWoBEnv(task)
        try:
            obs, info = env.reset(seed=1)
            ok = info["utterance"] and "URL: file://" in obs["messages"][-1]["content"]
            return task, None if ok else "no instruction or page"
        except Exception as exc:
            return task, repr(exc)[:200]
        finally:
            env.close()

    with ThreadPoolExecutor(4) as pool:
        failures = {task: why for task, why in pool.map(reset, task_names()) if why}
    assert failures == {}
