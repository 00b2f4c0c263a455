"""Register a brand-new environment and collect rollouts from it (run: python examples/custom_env.py)."""

from typing import Any

import agentenv
from agentenv.collector import collect
from agentenv.policies import ExpertPolicy, RandomPolicy

WORDS = ["python", "gymnasium", "agent", "rollout", "token", "reward", "policy", "sandbox"]


class HangmanEnv(agentenv.Env):
    """Guess the hidden word letter by letter; 6 wrong guesses lose. Reward 1 for revealing the word."""

    family = "puzzle"

    def __init__(self, **kwargs: Any):
        super().__init__(max_turns=26, **kwargs)

    def _reset(self, options):
        self.word = WORDS[int(self.np_random.integers(len(WORDS)))]
        self.guessed: set[str] = set()
        self.misses = 0
        text = f"Guess the word letter by letter: {self.pattern()}. Reply 'Action: guess <letter>'."
        return agentenv.observation(text, admissible=self.admissible_actions()), {"task_type": "hangman"}

    def pattern(self) -> str:
        return " ".join(c if c in self.guessed else "_" for c in self.word)

    def admissible_actions(self) -> list[str]:
        return [f"guess {c}" for c in "abcdefghijklmnopqrstuvwxyz" if c not in self.guessed]

    def _step(self, action):
        letter = action.command.split()[-1]
        self.guessed.add(letter)
        self.misses += letter not in self.word
        won, lost = set(self.word) <= self.guessed, self.misses >= 6
        text = "You won!" if won else "You lost." if lost else f"{self.pattern()} ({6 - self.misses} misses left)"
        obs = agentenv.observation(text, admissible=self.admissible_actions())
        return agentenv.StepResult(obs, reward=float(won), terminated=won or lost)

    def expert_action(self) -> str:
        return "Action: guess " + next(c for c in self.word if c not in self.guessed)


agentenv.register("agentenv/Hangman-v0", f"{__name__}:HangmanEnv", family="puzzle",
                  description="Guess a hidden word letter by letter.")

if __name__ == "__main__":
    agentenv.check_env("agentenv/Hangman-v0").raise_if_failed()
    for policy in (RandomPolicy(seed=0), ExpertPolicy()):
        summary, trajectories = collect("agentenv/Hangman-v0", policy, n_tasks=8, group_size=2, concurrency=4,
                                        progress="off")
        summary.print(title=f"Hangman with {policy.name}")
