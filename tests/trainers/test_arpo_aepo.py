"""ARPO and AEPO against algorithms.md §2(f) and §3(f): the entropy proxy, the branch rules, the budget
through the real collector, pre-monitoring, the penalty, and the update reductions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agentenv.trainers.aepo import AEPOBudget, penalised_probability, pre_monitored_roots
from agentenv.trainers.arpo import ARPOBudget
from agentenv.trainers.entropy import EntropyProbe, SegmentEntropy, topk_entropy
from agentenv.trajectory import Trajectory, Turn

QWEN_VOCAB = 151_665


def episode(tid: str = "t000000-s000", entropies: list[float] | None = None, valid: bool = True,
            branch_turn: int | None = None) -> Trajectory:
    """Turns whose exact per-token entropies are given (one token each)."""
    entropies = entropies or [1.0, 1.0, 1.0, 1.0]
    turns = [Turn(index=i, observation=[], action=f"a{i}", completion_ids=[i], entropies=[h], entropy_kind="exact",
                  action_valid=valid) for i, h in enumerate(entropies)]
    return Trajectory(trajectory_id=tid, group_id="t000000", task_id="t000000", task_index=0, sample_index=0,
                      seed=0, env_id="e", turns=turns, branch_turn=branch_turn)


def probe() -> EntropyProbe:
    return EntropyProbe(vocab_size=3, window=20, prefer="exact")


H = 1 / math.log(3)  # a one-token segment of entropy 1, as the probe scores it


def test_entropy_proxy_of_a_two_way_split():
    h = topk_entropy([[math.log(0.5), math.log(0.5)] + [-math.inf] * 8], QWEN_VOCAB)
    assert h == pytest.approx(0.0581040, abs=1e-7)
    turn = Turn(index=0, observation=[], action="x", top_logprobs=[[math.log(0.5), math.log(0.5)]] * 30,
                entropies=[9.0] * 30, entropy_kind="exact")
    topk = EntropyProbe(QWEN_VOCAB).segment(turn)
    assert topk.kind == "topk" and topk.value == pytest.approx(20 * 0.0581040, abs=1e-6)  # the first 20 tokens only
    exact = EntropyProbe(QWEN_VOCAB, prefer="exact").segment(turn)
    with pytest.raises(ValueError, match="cannot compare"):
        _ = topk - exact
    with pytest.raises(ValueError, match="neither"):
        EntropyProbe(QWEN_VOCAB).segment(Turn(index=0, observation=[], action="x"))


def test_no_branch_probability_and_no_entropy_weight_never_branch():
    budget = ARPOBudget(16, 8, probe(), copies=1, alpha=0.0, beta=0.0)
    assert all(not budget.branches(episode(f"t{i}", [0.1, 5.0, 9.0, 3.0])) for i in range(50))


def test_branch_probability_one_forks_every_tool_boundary():
    budget = ARPOBudget(16, 8, probe(), copies=3, alpha=1.0, beta=0.0)
    requests = budget.branches(episode())
    assert [(r.turn, r.count) for r in requests] == [(1, 3), (2, 3), (3, 3)]
    assert budget.branches(episode(valid=False)) == []  # no tool call, no boundary
    child = episode("child", branch_turn=2)
    assert [r.turn for r in budget.branches(child)] == [3]  # a fork's earlier boundaries are its parent's


def test_the_bernoulli_rule_fires_at_its_probability():
    budget = ARPOBudget(16, 8, probe(), copies=1, alpha=0.5, beta=0.2, seed=3)
    t = episode()
    draws = [budget.decide(t, j, 0.5)[0] for j in range(100_000)]
    assert np.mean(draws) == pytest.approx(0.6, abs=0.005)
    assert sum(budget.decide(t, j, -5.0)[0] for j in range(2000)) == 0  # clipped at 0
    assert [budget.decide(t, j, 0.5) for j in range(50)] == [budget.decide(t, j, 0.5) for j in range(50)]


def test_entropy_timing_and_initial_entropy():
    t = episode(entropies=[1.0, 3.0, 2.0, 5.0])
    paper = ARPOBudget(16, 8, probe(), timing="paper_probe")
    lagged = ARPOBudget(16, 8, probe(), timing="code_lagged")
    h0 = paper.h_init(t)
    assert [paper.entropy_change(t, j, h0) for j in (1, 2, 3)] == pytest.approx([2 * H, H, 4 * H])
    assert [lagged.entropy_change(t, j, h0) for j in (1, 2, 3)] == pytest.approx([0.0, 2 * H, H])
    fork = episode(entropies=[1.0, 3.0, 2.0, 5.0], branch_turn=2)
    assert paper.h_init(fork).value == pytest.approx(h0.value)  # inherited from the root
    own = ARPOBudget(16, 8, probe(), inherit_h_init=False)
    assert own.h_init(fork).value == pytest.approx(2 * H)  # its own first segment (entropy 2)
    paper.branches(t)
    assert [b["turn"] for b in t.extra["arpo"]["boundaries"]] == [1, 2, 3]


def test_pre_monitoring_allocation():
    assert pre_monitored_roots(12, 0.6, 0.2) == 7
    assert pre_monitored_roots(12, 0.5, 0.5) == 7 and pre_monitored_roots(16, 0.5, 0.5) == 9
    assert pre_monitored_roots(12, 0.1, 0.9) == 5
    # §3(f).1 lists 12 here, but its own formula gives ⌊12·σ(0.5·2)⌋ + 1 = ⌊8.77⌋ + 1 = 9 (the spec's other three
    # examples agree with the formula); 12 needs a larger gap, and the clamp holds it at k
    assert pre_monitored_roots(12, 2.0, 0.0) == 9
    assert pre_monitored_roots(12, 8.0, 0.0) == 12 and pre_monitored_roots(12, -40.0, 0.0) == 1
    budget = AEPOBudget(12, 6, probe(), dynamic=True)
    assert budget.pilot
    pilot = episode(entropies=[2.0, 0.0, 0.0, 0.0])
    assert budget.roots_after_pilot(pilot) == pre_monitored_roots(12, 2 * H, 0.5 * H) == 8
    assert pilot.extra["aepo"]["h_root"] == pytest.approx(2 * H) and pilot.extra["aepo"]["h_tool"] == pytest.approx(
        0.5 * H)
    assert not AEPOBudget(12, 6, probe()).pilot


def test_the_consecutive_branch_penalty():
    assert [penalised_probability(0.5, 0.2, 0.0, c) for c in (0, 1, 2, 4)] == pytest.approx(
        [0.5, 0.47368, 0.44444, 0.375], abs=1e-5)
    assert all(penalised_probability(0.5, 0.2, 0.0, c) == 0 for c in range(10, 30))


def test_aepo_with_no_streak_decides_as_arpo_with_the_mirrored_draw():
    class Mirrored(ARPOBudget):
        def coin(self, trajectory, boundary):
            rng = super().coin(trajectory, boundary)
            return type("Mirror", (), {"random": lambda self: 1.0 - rng.random()})()

    arpo = Mirrored(16, 8, probe(), copies=1, alpha=0.5, beta=0.2, seed=1)
    aepo = AEPOBudget(16, 8, probe(), copies=1, alpha=0.5, beta=0.2, seed=1, penalty=0.05)
    t = episode()
    for j in range(500):
        aepo.streak[t.group_id] = 0  # c = 0: the penalty factor is 1
        assert arpo.decide(t, j, 0.3)[0] == aepo.decide(t, j, 0.3)[0]


def test_the_streak_grows_with_consecutive_forks_and_resets():
    aepo = AEPOBudget(16, 8, probe(), copies=1, alpha=0.0, beta=0.0, penalty=0.05)  # always forks while f > 0
    t = episode()
    forks = [aepo.decide(t, j, 0.0)[0] for j in range(21)]
    assert forks == [1] * 20 + [0]  # f = 1 − 0.05·20 = 0 stops it
    assert aepo.streak[t.group_id] == 0 and aepo.decide(t, 21, 0.0)[0] == 1


def test_segment_entropy_subtraction():
    assert SegmentEntropy(2.0, "exact") - SegmentEntropy(0.5, "exact") == 1.5


# ----- TRACE's two phases on synthetic rollouts (§5(f).3-4) -----------------------------------------------
class Constant:
    """A predictor that says ``p`` for every prefix."""

    def __init__(self, p: float):
        self.p = p

    def predict(self, prefixes):
        return np.full(len(prefixes), self.p)

    def update(self, pairs):
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        return None


def rollout(task: int, sample: int, turns: int = 3) -> Trajectory:
    t = episode(f"t{task:06d}-s{sample:03d}", [1.0] * turns)
    t.group_id, t.task_id, t.task_index, t.sample_index = f"t{task:06d}", f"t{task:06d}", task, sample
    for turn in t.turns:
        turn.observation = [{"role": "user", "content": f"task {task}"}]
    return t


def test_trace_with_all_budget_at_the_roots_and_a_flat_predictor_is_grpo():
    from agentenv.trainers.trace import TRACEBudget

    budget = TRACEBudget(n_tasks=3, per_task=4, predictor=Constant(0.5), root_fraction=1.0, min_roots=2, seed=1)
    roots = [rollout(task, s) for task in range(3) for s in range(budget.initial(task))]
    requests = budget.after_round(roots)
    assert sorted((parent.task_index, r.turn, r.count) for parent, r in requests) == [(0, 0, 2), (1, 0, 2), (2, 0, 2)]
    assert budget.after_round(roots) == [] and budget.after_round(roots) == []  # no prefix phase: nothing is left
    assert [budget.expected(task) for task in range(3)] == [4, 4, 4]


def test_trace_spends_the_rest_on_turn_prefixes_and_conserves_the_budget():
    from agentenv.trainers.trace import TRACEBudget

    budget = TRACEBudget(n_tasks=2, per_task=4, predictor=Constant(0.3), root_fraction=0.5, min_roots=2, seed=1)
    roots = [rollout(task, s) for task in range(2) for s in range(budget.initial(task))]
    prefixes = budget.after_round(roots)  # the floors already spent the roots' half: straight to phase P
    assert prefixes and all(r.turn in (1, 2) and r.kind == "branch" for _, r in prefixes)
    assert all(0 < r.note["p"] < 1 for _, r in prefixes)
    assert sum(r.count for _, r in prefixes) == 4 and sum(budget.expected(t) for t in range(2)) == 8
    assert min(r.turn for _, r in prefixes) == 1  # ties go to the shallower anchors first
    assert budget.after_round(roots) == []
