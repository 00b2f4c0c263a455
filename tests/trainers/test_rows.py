"""Row views (algorithms.md §9.4) and token-budget batching."""

from __future__ import annotations

import pytest

from agentenv.trainers.rows import RowViewError, pack_by_tokens, sequence_rows, step_rows
from agentenv.trajectory import Trajectory, Turn


def episode(turns: list[Turn], tid: str = "ep") -> Trajectory:
    return Trajectory(trajectory_id=tid, group_id="g", task_id="t", task_index=0, sample_index=0, seed=0,
                      env_id="agentenv/Maze-v0", turns=turns, reward=1.0)


def two_turns() -> Trajectory:
    # turn 0: prompt [1,2,3] -> action [10,11]; turn 1 extends the whole context with observation [4,5]
    return episode([
        Turn(index=0, observation=[], action="a", prompt_ids=[1, 2, 3], completion_ids=[10, 11],
             completion_mask=[1, 1], logprobs=[-0.1, -0.2]),
        Turn(index=1, observation=[], action="b", prompt_ids=[4, 5], prompt_offset=5, completion_ids=[12],
             completion_mask=[1], logprobs=[-0.3], teacher_completion_ids=[13, 14]),
    ])


def test_step_view_is_each_turns_exact_prompt_and_action():
    rows = step_rows([two_turns()])
    assert [r.tokens for r in rows] == [[1, 2, 3, 10, 11], [1, 2, 3, 10, 11, 4, 5, 12]]
    assert [r.mask for r in rows] == [[0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0, 0, 1]]
    assert rows[1].old_logp == [0.0] * 7 + [-0.3] and [r.turn for r in rows] == [0, 1]
    labelled = step_rows([two_turns()], labels=True)
    assert len(labelled) == 1 and labelled[0].tokens[-2:] == [13, 14] and labelled[0].n_trained == 2


def test_sequence_view_masks_observations_between_actions():
    [row] = sequence_rows([two_turns()])
    assert row.tokens == [1, 2, 3, 10, 11, 4, 5, 12]
    assert row.mask == [0, 0, 0, 1, 1, 0, 0, 1]
    assert row.old_logp == [0, 0, 0, -0.1, -0.2, 0, 0, -0.3] and row.turn is None


def test_sequence_view_refuses_a_slid_window_and_text_only_turns():
    slid = two_turns()
    slid.turns[1].prompt_offset = 0  # re-rendered from scratch: not an extension
    with pytest.raises(RowViewError, match="slid"):
        sequence_rows([slid])
    assert len(step_rows([slid])) == 2  # the step view is fine with it
    text_only = episode([Turn(index=0, observation=[], action="go north")])
    with pytest.raises(RowViewError, match="without token ids"):
        step_rows([text_only])


def test_packing_by_tokens_keeps_every_row_once_and_within_budget():
    lengths = [100, 30, 30, 90, 10, 500, 60, 60, 60]
    batches = pack_by_tokens(lengths, max_tokens=200)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        padded = max(lengths[i] for i in batch) * len(batch)
        assert padded <= 200 or len(batch) == 1
    assert [5] in batches  # longer than the budget: alone
    assert len(pack_by_tokens([10] * 8, max_tokens=40)) == 2
    with pytest.raises(ValueError):
        pack_by_tokens([1], 0)
