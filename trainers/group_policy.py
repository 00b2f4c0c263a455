"""What a group does when some of its episodes failed for infrastructure reasons (reliability F14).

A group-relative advantage (GRPO and its family) compares each episode with its group. An episode that
failed because an env, a grader or a policy server broke has no reward at all: scoring it 0 would bias
the group's baseline (the failure reports behind this file: infra failures trained on as reward 0). Two
policies, both of which leave failed members out of every advantage (never zero-filled):

* ``refill`` (drop + refill): the collector re-runs an infrastructure failure on a fresh env, up to
  ``refill_retries`` times, so the group usually ends complete; what still failed is then masked;
* ``mask`` (mask + min_usable): nothing is re-run; the failed members are masked out.

Either way a group keeps training only if at least ``min_usable`` of its episodes are usable; a smaller
group is dropped whole (its advantages would rest on too few samples).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from agentenv.ledger import terminal_status
from agentenv.trajectory import Trajectory

from .trees import final_attempts

GROUP_POLICIES = ("refill", "mask")


@dataclass(frozen=True)
class GroupMask:
    """The usable episodes of a batch and what was left out."""

    usable: list[Trajectory]
    #: groups dropped whole for having fewer than min_usable usable members
    groups_dropped: int
    #: the fraction of slots (final attempts) that ended failed_infra
    infra_failed_rate: float

    def metrics(self) -> dict[str, float]:
        return {"infra_failed_rate": self.infra_failed_rate, "groups_dropped": float(self.groups_dropped)}


def mask_groups(episodes: Sequence[Trajectory], usable: Sequence[Trajectory], min_usable: int) -> GroupMask:
    """Keep the ``usable`` episodes (ok, fresh enough) of groups with at least ``min_usable`` of them.

    ``episodes`` is the whole batch as collected (failed attempts included), from which the infrastructure
    failure rate is measured per slot (a slot whose retry succeeded counts as usable)."""
    if min_usable < 1:
        raise ValueError(f"min_usable must be >= 1, got {min_usable}")
    slots = final_attempts(episodes)
    infra = sum(terminal_status(t) == "failed_infra" for t in slots)
    by_group: dict[str, list[Trajectory]] = defaultdict(list)
    for t in usable:
        by_group[t.group_id].append(t)
    kept = [t for t in usable if len(by_group[t.group_id]) >= min_usable]
    groups = {t.group_id for t in slots}
    dropped = len(groups) - len({t.group_id for t in kept})
    return GroupMask(kept, dropped, infra / len(slots) if slots else 0.0)
