"""The scripted MiniWoB++ policies solve their tasks on a real Chromium, rewarded by the page itself."""

from __future__ import annotations

import pytest

from agentenv.envs.web.miniwob import MiniWoBEnv
from agentenv.envs.web.miniwob_scripts import SCRIPTS, elements, next_action

SEEDS = (1, 2, 3)
MAX_STEPS = 10


def test_scripts_cover_enough_tasks():
    assert len(SCRIPTS) >= 12


def test_elements_are_parsed_from_the_page_text():
    page = ('Task: Enter "x"\n\nPage:\nPassword\n[1] textbox "" value="a \\"b\\""\n'
            '[2] checkbox "AlWW" checked\n[3] button "Submit"\n')
    found = elements(page)
    assert [(e.id, e.role, e.label) for e in found] == [(1, "textbox", ""), (2, "checkbox", "AlWW"),
                                                         (3, "button", "Submit")]
    assert found[0].value == 'a "b"' and found[1].checked and not found[2].checked


@pytest.mark.parametrize("task", sorted(SCRIPTS))
def test_script_solves_its_task(task: str):
    env = MiniWoBEnv(task)
    try:
        for seed in SEEDS:
            obs, info = env.reset(seed=seed)
            text = obs["messages"][-1]["content"]
            terminated, reward, actions = False, 0.0, []
            for _ in range(MAX_STEPS):
                action = next_action(task, info["utterance"], text)
                actions.append(action)
                assert action is not None, f"{task} seed {seed}: no action for {info['utterance']!r}\n{text}"
                obs, reward, terminated, _, _ = env.step(action)
                text = obs["messages"][-1]["content"]
                if terminated:
                    break
            assert terminated and reward > 0, f"{task} seed {seed}: {info['utterance']!r} {actions} -> {reward}"
    finally:
        env.close()
