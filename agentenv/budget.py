"""The collector's per-group ledger for budgeted tree rollouts (``shared/algorithms.md`` §9.1).

A group (one task, one env seed) holds exactly ``budget`` episodes: its roots, the branches granted while
slots remain, and fresh ``global_refill`` roots for what branching left unused. The ledger counts slots
(a retried attempt reuses its slot), what is in flight, and the children granted to each parent, with
ids that depend only on the parent and the branch point, so a resumed collection recognises the children
it already has.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from agentenv.hooks import BranchRequest
from agentenv.trajectory import Trajectory


def child_id(parent_id: str, request: BranchRequest, index: int, post_hoc: bool = False) -> str:
    """``<parent>-b<turn>.<k>`` (``-b<turn>+<offset>.<k>`` inside a turn; ``-p`` for post-hoc rounds)."""
    point = f"{request.turn}" if not request.token_offset else f"{request.turn}+{request.token_offset}"
    return f"{parent_id}-{'p' if post_hoc else 'b'}{point}.{index}"


def slot_id(trajectory_id: str) -> str:
    """The id of the slot an episode fills: its id without the ``-a<attempt>`` of a retry."""
    base, sep, attempt = trajectory_id.rpartition("-a")
    return base if sep and attempt.isdigit() else trajectory_id


@dataclass
class GroupLedger:
    budget: int | None
    #: slots taken (roots, branches, refills; a pilot takes none)
    slots: set[str] = field(default_factory=set)
    in_flight: int = 0
    #: the next sample index for a root or refill
    next_sample: int = 0
    #: children made so far per (parent, branch point, round kind), for their ids
    children: Counter[tuple[str, int, int, bool]] = field(default_factory=Counter)

    @property
    def free(self) -> int:
        return 10**9 if self.budget is None else max(0, self.budget - len(self.slots))

    def grant(self, parent: Trajectory, request: BranchRequest, post_hoc: bool = False) -> list[str]:
        """Ids for up to ``request.count`` children of ``parent`` while slots remain; takes their slots."""
        ids = []
        key = (parent.trajectory_id, request.turn, request.token_offset, post_hoc)
        for _ in range(request.count):
            index = self.children[key]
            self.children[key] += 1
            tid = child_id(parent.trajectory_id, request, index, post_hoc)
            if tid in self.slots:  # resumed: this child is stored already
                continue
            if not self.free:
                break
            self.slots.add(tid)
            ids.append(tid)
        return ids
