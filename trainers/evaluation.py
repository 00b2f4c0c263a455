"""What a batch of episodes says about the policy: success, reward, valid actions, and agreement with a
teacher where one labelled the states.

Success is over every episode (a failed episode counts as a failure: leaving it out would flatter a
policy that crashes its env); the other means are over the episodes that ran. Teacher agreement is the
share of student turns whose command equals the teacher's label at the same state, which is how close an
imitation learner (DAgger) has come to its teacher even while the task success of both is still low.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentenv.parsing import ReActParser
from agentenv.trajectory import Trajectory

_PARSER = ReActParser(bare_commands=True)


def command_of(text: str) -> str:
    """An action's command (``Action: go to desk 1`` and ``go to desk 1`` agree), lower-cased, one space."""
    try:
        parsed = _PARSER.parse(text)
        command = parsed.command or text
    except Exception:
        command = text
    return " ".join(command.lower().split())


def episode_metrics(episodes: Sequence[Trajectory], prefix: str = "") -> dict[str, float]:
    ok = [t for t in episodes if t.status == "ok"]
    turns = [turn for t in ok for turn in t.turns]
    metrics = {
        f"{prefix}success": sum(t.success for t in ok) / max(len(episodes), 1),
        f"{prefix}reward": sum(t.reward for t in ok) / max(len(ok), 1),
        f"{prefix}turns": len(turns) / max(len(ok), 1),
        f"{prefix}valid_actions": sum(turn.action_valid for turn in turns) / max(len(turns), 1),
        f"{prefix}episodes": float(len(episodes)),
        f"{prefix}failed": float(len(episodes) - len(ok)),
    }
    labelled = [turn for turn in turns if turn.actor == "student" and turn.teacher_action is not None]
    if labelled:
        same = sum(command_of(turn.action) == command_of(turn.teacher_action or "") for turn in labelled)
        metrics[f"{prefix}teacher_agreement"] = same / len(labelled)
    return metrics
