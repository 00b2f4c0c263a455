"""Learning tests: the trainers make the tiny random model better at a task, measured before and after.

The tiny model (random weights, the real 49k-token SmolLM2 tokenizer) samples from a nearly uniform
distribution over the whole vocabulary, so an env it can learn from must give a random reply a fair chance
of success. The envs here are defined in this file and registered under test ids:

* :class:`LetterGatesEnv`: pass ``gates`` gates in a row (one turn each); a gate opens when the reply begins
  with a letter from A to H. About 41% of the vocabulary's tokens begin with such a letter (case-insensitive,
  after leading spaces), so a random policy passes a gate with p ≈ 0.4 and two gates with p ≈ 0.15-0.25:
  GRPO groups of four often have mixed outcomes (a signal), the whole multi-turn episode must be right to
  succeed, and a policy that learns to begin every reply with such a letter solves every task. Its expert
  answers "Go", which the DAgger student must learn to say, and to stop after.

The rule is the same for every task (the seed changes nothing but the sampling), so the tests show that
the trainers move the policy towards reward (GRPO) and towards the teacher's labels (DAgger) on multi-turn
episodes; they do not show that the tiny model learns to read its observations (an env whose expert answer
depends on the observation, e.g. "the door is east" -> "east", needs far more updates than a unit-test
budget allows: ~100 s of CPU got its greedy agreement with the expert only from 0 to 0.2).

Measurements use the model as saved in the run's last checkpoint (a fresh policy), on task seeds the
training never used, so they do not depend on the trainer's own evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentenv import register
from agentenv.collector import CollectConfig, Collector
from agentenv.env import Env, StepResult
from agentenv.hooks import TeacherMixing
from agentenv.messages import Observation, message, observation
from agentenv.parsing import ParsedAction
from agentenv.policies import make_policy
from agentenv.policies.embedded import TransformersPolicy
from agentenv.policy import SamplingParams
from agentenv.trainers.config import TrainConfig
from agentenv.trainers.loop import Trainer
from agentenv.trajectory import Trajectory

pytestmark = pytest.mark.integration

GATES = "agentenv/TestLetterGates-v0"
#: task seeds for the measurements, far from the trainer's (seed + 1000 * step + task)
HELD_OUT = 7_000_000


class LetterGatesEnv(Env):
    """Pass ``gates`` gates; a gate opens when the reply begins with a letter from A to H (either case).

    A closed gate ends the episode (terminated, reward 0); the last open gate gives reward 1. Every action
    text parses, so the only thing that matters is the rule the observation states.
    """

    family = "puzzle"
    nonblocking_steps = True
    LETTERS = frozenset("ABCDEFGH")

    def __init__(self, gates: int = 2, **kwargs: Any):
        super().__init__(max_turns=gates, **kwargs)
        self.gates = gates
        self.passed = 0

    def _ask(self) -> str:
        return f"Gate {self.passed + 1} of {self.gates}: begin your reply with a letter from A to H."

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self.passed = 0
        task = f"Pass {self.gates} gates."
        return observation(message("system", "Answer briefly."), f"{task}\n{self._ask()}"), {"task": task}

    def parse_action(self, text: str) -> ParsedAction:
        return ParsedAction(text=text, command=text.strip())

    def _step(self, action: ParsedAction) -> StepResult:
        if (action.command or "x")[0].upper() not in self.LETTERS:
            return StepResult(observation("The gate stays closed."), 0.0, terminated=True, info={"won": False})
        self.passed += 1
        if self.passed == self.gates:
            return StepResult(observation("All gates are open!"), 1.0, terminated=True, info={"won": True})
        return StepResult(observation(f"The gate opens. {self._ask()}"), 0.0, info={"won": False})

    def expert_action(self) -> str | None:
        return "Go"  # begins with G: the expert opens every gate


@pytest.fixture(scope="module", autouse=True)
def learning_envs() -> None:
    # register replaces an existing spec, so re-importing this module (or another test registering the same
    # id) is harmless; the entry point names this module, which pytest keeps in sys.modules
    register(GATES, f"{__name__}:LetterGatesEnv", family="puzzle", description="learning test env (GRPO, DAgger)")


def rollouts(model: Path, n: int, temperature: float, max_tokens: int,
             teacher: TeacherMixing | None = None) -> list[Trajectory]:
    """``n`` held-out episodes of two gates by the model saved at ``model`` (a fresh in-process policy)."""
    policy = TransformersPolicy(str(model), name="measured")
    cfg = CollectConfig(env_id=GATES, env_kwargs={"gates": 2}, n_tasks=n, concurrency=min(n, 32), seed=HELD_OUT,
                        sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature), progress="off")
    collector = Collector(cfg, policy, teacher=teacher)
    collector.run()
    episodes = collector.trajectories
    assert len(episodes) == n and all(t.status == "ok" for t in episodes), [t.error for t in episodes]
    return episodes


def success(episodes: list[Trajectory]) -> float:
    return sum(t.success for t in episodes) / len(episodes)


def last_checkpoint(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step-[0-9]*[0-9]"))[-1]


# GRPO: lr 5e-2 is high for a real model but right for this one: a random tiny model must move a token's
# logit by ~10 nats (log of the vocabulary) before it dominates, and Adam moves each weight ~lr per step.
GRPO_LR = 5e-2
# DAgger: the tiny model first learns the labels' tokens as a bag (the same mix at every position) and only
# then where each goes (the label, then the end of the turn): ~20 optimizer steps at 1e-2, so several epochs
# per collection step over the (small) aggregated dataset.
DAGGER_LR = 1e-2
DAGGER_STEPS = 4
DAGGER_EPOCHS = 6


def test_grpo_raises_the_success_rate_of_a_multi_turn_env(tiny_model_dir: Path, tmp_path: Path):
    start = success(rollouts(tiny_model_dir, n=64, temperature=1.0, max_tokens=2))
    run = tmp_path / "grpo"
    cfg = TrainConfig(algo="grpo", env=GATES, env_kwargs={"gates": 2}, model=str(tiny_model_dir), out=str(run),
                      steps=12, tasks_per_step=8, group_size=4, concurrency=32, max_tokens=2, temperature=1.0,
                      lr=GRPO_LR, micro_batch_tokens=4096, seed=0, progress="off")
    Trainer(cfg).run()
    trained = last_checkpoint(run)
    end = success(rollouts(trained, n=64, temperature=1.0, max_tokens=2))
    greedy = success(rollouts(trained, n=16, temperature=0.0, max_tokens=2))
    print(f"GRPO success (sampled): {start:.3f} -> {end:.3f}; greedy after: {greedy:.3f}")
    assert start <= 0.35  # the measured start: a random policy passes two gates ~20% of the time
    assert end >= 0.85 and end >= start + 0.5
    assert greedy == 1.0


def agreement(episodes: list[Trajectory]) -> float:
    """The share of visited states where the student's reply is the teacher's label (spacing aside)."""
    turns = [turn for t in episodes for turn in t.turns]
    assert turns and all(turn.teacher_action is not None and turn.actor == "student" for turn in turns)
    return sum(turn.action.strip() == (turn.teacher_action or "").strip() for turn in turns) / len(turns)


def test_dagger_brings_the_student_to_its_teacher(tiny_model_dir: Path, tmp_path: Path):
    labels = TeacherMixing(make_policy("expert"), beta=0.0, label_all_states=True)  # labels, never acts

    def measure(model: Path) -> tuple[float, float]:
        episodes = rollouts(model, n=16, temperature=0.0, max_tokens=3, teacher=labels)
        return agreement(episodes), success(episodes)

    agree_before, success_before = measure(tiny_model_dir)
    run = tmp_path / "dagger"
    cfg = TrainConfig(algo="dagger", env=GATES, env_kwargs={"gates": 2}, model=str(tiny_model_dir), out=str(run),
                      teacher="expert", steps=DAGGER_STEPS, tasks_per_step=4, group_size=1, concurrency=16,
                      max_tokens=3, lr=DAGGER_LR, epochs=DAGGER_EPOCHS, seed=0, progress="off")
    Trainer(cfg).run()
    agree_after, success_after = measure(last_checkpoint(run))
    print(f"DAgger agreement: {agree_before:.3f} -> {agree_after:.3f}; success {success_before:.3f} -> "
          f"{success_after:.3f}")
    assert agree_before <= 0.1  # a random reply is never exactly "Go" (its greedy success is luck: not asserted)
    assert agree_after >= 0.9 and success_after >= 0.9  # the expert itself succeeds every time
