"""Tasks for the code interpreter: reasoning-gym's procedural families and math word problems.

A task is (family, task seed). reasoning-gym generates entry ``i`` of a dataset from ``seed + i``, so a
dataset of size 1 at a seed *is* one task, and the train and held-out splits are disjoint seed ranges:
the same task seed always gives the same question, on any machine, with no data files. Families with
their own scorer use it (`score_answer`, in [0, 1]); math word problems (`gsm_symbolic`) are checked by
`math-verify` against the reference answer, as the field does for math.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agentenv.envs.code.solvers import FAMILIES as PROCEDURAL_FAMILIES

log = logging.getLogger(__name__)

MATH_FAMILIES = ("gsm_symbolic",)
DEFAULT_FAMILIES = (
    "basic_arithmetic", "chain_sum", "gcd", "lcm", "prime_factorization", "fraction_simplification",
    "base_conversion", "letter_counting", "word_sorting", "count_primes", "calendar_arithmetic",
    "power_function",
)
SPLIT_SEEDS = {"train": (0, 100_000_000), "test": (100_000_000, 200_000_000)}

_verify_lock = threading.Lock()


@dataclass(frozen=True)
class CodeTask:
    family: str
    seed: int
    split: str
    question: str
    reference: str

    @property
    def procedural(self) -> bool:
        return self.family in PROCEDURAL_FAMILIES


@lru_cache(maxsize=32)  # a few MB each (letter_counting keeps its corpus): the tasks in flight, not every one seen
def _dataset(family: str, seed: int) -> Any:
    import reasoning_gym

    return reasoning_gym.create_dataset(family, size=1, seed=seed)


def make_task(family: str, seed: int, split: str) -> CodeTask:
    entry = _dataset(family, seed)[0]
    return CodeTask(family, seed, split, str(entry["question"]), str(entry["answer"]))


def split_of(seed: int) -> str:
    for name, (low, high) in SPLIT_SEEDS.items():
        if low <= seed < high:
            return name
    raise ValueError(f"task seed {seed} is outside every split")


def score(task: CodeTask, answer: str) -> float:
    """The task's own scorer; math word problems by math-verify (answer equivalence, not string match).

    Some reasoning-gym scorers parse the answer without guarding it (``prime_factorization`` raises on
    "12 is prime"): an answer its scorer cannot read is a wrong answer, scored 0, not an env fault."""
    if task.family in MATH_FAMILIES:
        return math_score(task.reference, answer)
    dataset = _dataset(task.family, task.seed)
    try:
        return float(dataset.score_answer(answer=answer, entry=dataset[0]))
    except Exception as e:
        log.debug("%s's scorer rejected %r: %r", task.family, answer[:200], e)
        return 0.0


def math_score(reference: str, answer: str) -> float:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # Outside the main thread math-verify's own timeouts raise; a cheap parse needs none (platform notes).
    with _verify_lock:
        gold = parse(f"${reference}$", parsing_timeout=None)
        guess = parse(answer if "$" in answer or "\\boxed" in answer else f"${answer}$", parsing_timeout=None)
        if not guess:
            return 0.0
        return 1.0 if verify(gold, guess, timeout_seconds=None) else 0.0
