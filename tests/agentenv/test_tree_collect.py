"""Budgeted tree rollouts through the real collector and the tiny model (``shared/algorithms.md`` §9.1):
exact group budgets with refills, forks at turn boundaries and inside turns that reuse their parent's
tokens, clone by replay or snapshot, refusal on unclonable envs, the store round trip and resume."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

import agentenv
from agentenv.budget import child_id
from agentenv.collector import BranchingError, CollectConfig, Collector
from agentenv.envs.puzzles.guess_number import GuessNumberEnv
from agentenv.hooks import BranchRequest
from agentenv.policy import SamplingParams
from agentenv.store import TrajectoryStore
from agentenv.testing import AnyReplyEnv, ForkAt
from agentenv.trainers.trees import TreeInvariantError, check_groups
from agentenv.trajectory import Trajectory

pytestmark = pytest.mark.integration

agentenv.register("agentenv/TestAnyReply-v0", "agentenv.testing:AnyReplyEnv", family="test")


class Unclonable(AnyReplyEnv):
    clone_mode = "none"


class CountingGuess(GuessNumberEnv):
    steps = 0

    def step(self, action):
        CountingGuess.steps += 1
        return super().step(action)


agentenv.register("agentenv/TestUnclonable-v0", f"{__name__}:Unclonable", family="test")
agentenv.register("agentenv/TestCountingGuess-v0", f"{__name__}:CountingGuess", family="test")


@pytest.fixture(scope="module")
def policy(tiny_model_dir: Path):
    from agentenv.policies.embedded import TransformersPolicy

    p = TransformersPolicy(str(tiny_model_dir), name="tiny")
    yield p
    asyncio.run(p.aclose())


class AtTurn(ForkAt):
    """Branch every root at ``turn`` (``count`` children, ``offset`` tokens into the turn); budget ``total``;
    with ``post_hoc`` the forks are asked for after each round instead."""

    def __init__(self, total: int, roots: int, turn: int = 1, count: int = 2, offset: int = 0,
                 post_hoc: bool = False):
        super().__init__(total, roots, turn, count, offset)
        self.post_hoc = post_hoc  # type: ignore[misc]
        self.done: set[str] = set()

    def request(self) -> BranchRequest:
        return BranchRequest(self.turn, self.count, token_offset=self.token_offset, note={"why": "test"})

    def branches(self, trajectory: Trajectory) -> Sequence[BranchRequest]:
        return [] if self.post_hoc else super().branches(trajectory)

    def after_round(self, finished):
        fresh = [t for t in finished if t.parent_trajectory_id is None and t.trajectory_id not in self.done]
        self.done.update(t.trajectory_id for t in fresh)
        return [(t, self.request()) for t in fresh if len(t.turns) > self.turn]


def collect(policy, strategy, env_id="agentenv/TestAnyReply-v0", store=None, n_tasks=2, concurrency=4, **kw):
    cfg = CollectConfig(env_id, n_tasks=n_tasks, group_size=strategy.roots, concurrency=concurrency, seed=5,
                        sampling=SamplingParams(max_tokens=6, top_logprobs=3), progress="off", **kw)
    c = Collector(cfg, policy, store, branching=strategy)
    c.run()
    return list(store.episodes()) if store is not None else c.trajectories


def test_groups_hold_exactly_their_budget_and_forks_share_the_parents_tokens(policy):
    episodes = collect(policy, AtTurn(total=5, roots=2, count=2))
    check_groups(episodes, 5)
    kinds = Counter(t.kind for t in episodes)
    assert kinds["init"] == 4 and kinds["branch"] == 6 and sum(kinds.values()) == 10  # 2 roots + 3 forks each
    by_id = {t.trajectory_id: t for t in episodes}
    for child in (t for t in episodes if t.kind == "branch"):
        parent = by_id[child.parent_trajectory_id]
        assert child.branch_turn == 1 and child.tree_id == parent.trajectory_id
        assert child.turns[0].completion_ids is parent.turns[0].completion_ids  # by reference, not copied
        assert child.turns[0].logprobs is parent.turns[0].logprobs
        assert child.full_prompt_ids(1) == parent.full_prompt_ids(1)  # the exact token prefix
        assert child.extra["branch"] == {"why": "test"}
    granted = [c["id"] for t in episodes for c in t.extra.get("children", [])]
    assert sorted(granted) == sorted(t.trajectory_id for t in episodes if t.kind == "branch")
    assert policy.prefix_tokens["reused"] > 0


def test_unused_slots_are_refilled_with_global_samples_and_a_broken_tree_is_caught(policy):
    episodes = collect(policy, AtTurn(total=4, roots=2, count=0))
    check_groups(episodes, 4)
    assert Counter(t.kind for t in episodes) == {"init": 4, "global_refill": 4}
    assert sorted(t.sample_index for t in episodes if t.group_id == "t000000") == [0, 1, 2, 3]
    with pytest.raises(TreeInvariantError, match="not its budget of 5"):
        check_groups(episodes, 5)


def test_refills_one_at_a_time_may_branch_into_the_slots_after_them(policy):
    """ARPO's released loop: an idle group gets one global sample, which forks like any root."""
    eager = collect(policy, AtTurn(total=5, roots=1, count=1))
    assert Counter(t.kind for t in eager) == {"init": 2, "branch": 2, "global_refill": 6}
    strategy = AtTurn(total=5, roots=1, count=1)
    strategy.refill_one_at_a_time = True
    episodes = collect(policy, strategy)
    check_groups(episodes, 5)
    assert Counter(t.kind for t in episodes) == {"init": 2, "branch": 4, "global_refill": 4}
    by_id = {t.trajectory_id: t for t in episodes}
    assert {by_id[t.parent_trajectory_id].kind for t in episodes if t.kind == "branch"} == {"init", "global_refill"}


def test_a_fork_inside_a_turn_keeps_the_parents_first_tokens_and_samples_the_rest(policy):
    episodes = collect(policy, AtTurn(total=4, roots=2, turn=1, count=1, offset=2, post_hoc=True))
    check_groups(episodes, 4)
    by_id = {t.trajectory_id: t for t in episodes}
    children = [t for t in episodes if t.parent_trajectory_id]
    assert len(children) == 4
    for child in children:
        parent = by_id[child.parent_trajectory_id]
        mine, theirs = child.turns[1], parent.turns[1]
        assert child.branch_token_offset == 2 and "-p1+2." in child.trajectory_id
        assert mine.completion_ids[:2] == theirs.completion_ids[:2] and mine.logprobs[:2] == theirs.logprobs[:2]
        assert len(mine.logprobs) == len(mine.completion_ids) == len(mine.entropies)
        assert (mine.prompt_offset, mine.prompt_ids) == (theirs.prompt_offset, theirs.prompt_ids)
        assert mine.action == policy.decode(mine.completion_ids)
        assert mine.completion_ids[2:] != theirs.completion_ids[2:]  # re-sampled under the child's own seed


def test_snapshot_envs_restore_instead_of_replaying_and_unclonable_envs_are_refused(policy):
    CountingGuess.steps = 0
    episodes = collect(policy, AtTurn(total=3, roots=1, turn=2, count=2), env_id="agentenv/TestCountingGuess-v0",
                       env_kwargs={"max_turns": 3})
    check_groups(episodes, 3)
    by_id = {t.trajectory_id: t for t in episodes}
    forks = [t for t in episodes if t.kind == "branch"]
    assert len(forks) == 4
    for fork in forks:  # the restored state answers as the parent's env did
        parent = by_id[fork.parent_trajectory_id]
        assert [u.feedback for u in fork.turns[:2]] == [u.feedback for u in parent.turns[:2]]
    played = sum(len(t.turns) - (t.branch_turn or 0) for t in episodes)
    assert CountingGuess.steps == played  # a restored fork re-plays none of its parent's guesses
    with pytest.raises(BranchingError, match="cannot be cloned"):
        collect(policy, AtTurn(total=3, roots=1), env_id="agentenv/TestUnclonable-v0")


def test_the_tree_survives_the_store_and_an_interrupted_collection_resumes_it(policy, tmp_path: Path):
    strategy = AtTurn(total=5, roots=2, count=2)
    full = collect(policy, strategy, concurrency=1)
    # an interruption after the roots were written, before any child was: resume makes exactly the rest
    store = TrajectoryStore(tmp_path / "run")
    cfg = CollectConfig("agentenv/TestAnyReply-v0", n_tasks=2, group_size=2, concurrency=1, seed=5,
                        sampling=SamplingParams(max_tokens=6, top_logprobs=3), progress="off")
    store.open_run(cfg.run_identity())
    store.write([t for t in full if t.kind == "init"])
    resumed = collect(policy, AtTurn(total=5, roots=2, count=2), store=store, concurrency=1)
    check_groups(resumed, 5)
    assert sorted(t.trajectory_id for t in resumed) == sorted(t.trajectory_id for t in full)
    assert len({t.trajectory_id for t in resumed}) == len(resumed)  # no duplicates
    again = collect(policy, AtTurn(total=5, roots=2, count=2), store=store, concurrency=1)
    assert len(again) == len(resumed)  # nothing left to do
    stored = {t.trajectory_id: t for t in again}
    for t in full:  # same seed, same decisions, same tokens
        assert [u.completion_ids for u in stored[t.trajectory_id].turns] == [u.completion_ids for u in t.turns]
        assert (stored[t.trajectory_id].parent_trajectory_id, stored[t.trajectory_id].branch_turn) == \
            (t.parent_trajectory_id, t.branch_turn)


def test_child_ids_name_the_parent_and_the_branch_point():
    assert child_id("t000001-s002", BranchRequest(3), 1) == "t000001-s002-b3.1"
    assert child_id("t000001-s002", BranchRequest(3, token_offset=7), 0, post_hoc=True) == "t000001-s002-p3+7.0"
