"""The ALFWorld expert: a shortest plan from any state, by breadth-first search on the native engine.

Why a search and not ALFWorld's hand-coded expert: that one follows a fixed script from the start state (and
fails most ``pick_two_obj_and_place`` games), while DAgger asks the expert for the best action after the
student's mistakes, from wherever the student left the world. Searching the engine itself makes every plan
legal by construction and as short as possible among the commands that can matter for the goal; those are
the only ones expanded (going to, opening and taking from receptacles that hold a goal object, the goal,
station and lamp receptacles; putting the goal object where the goal wants it; heating, cooling, cleaning
it; using the lamp; putting down anything else the agent holds), which keeps the search to a few thousand
states. Plans are cached by state, so following the expert costs one search per deviation, not per step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from .engine import Game, GameState, World
from .pddl import And, Atom, Exists, Forall, Formula, Not, Or

MAX_DEPTH = 40
MAX_STATES = 200_000


class Expert:
    """Shortest-plan oracle for one game: ``next_command()`` at the game's current state."""

    def __init__(self, game: Game, task_type: str | None = None):
        self.game = game
        self.task_type = task_type
        w = game.world
        atoms = list(_atoms(w.goal))
        otypes = {a.args[1].lower() for a in atoms if a.pred.lower() == "objecttype" and len(a.args) == 2}
        rtypes = {a.args[1].lower() for a in atoms if a.pred.lower() == "receptacletype" and len(a.args) == 2}
        toggle_vars = {a.args[0] for a in atoms if a.pred.lower() == "toggleable"}
        lamp_types = {a.args[1].lower() for a in atoms if a.pred.lower() == "objecttype" and a.args[0] in toggle_vars}
        preds = {a.pred.lower() for a in atoms}
        self.targets = _mask(i for i, types in enumerate(w.otypes) if types & (otypes - lamp_types))
        self.lamps = _mask(i for i, types in enumerate(w.otypes) if types & lamp_types)
        self.goal_recs = _mask(r for r, types in enumerate(w.rtypes) if types & rtypes)
        self.clean_needed, self.hot_needed, self.cool_needed = "isclean" in preds, "ishot" in preds, "iscool" in preds
        self.stations = ((w.sinks if self.clean_needed else 0) | (w.microwaves if self.hot_needed else 0)
                         | (w.fridges if self.cool_needed else 0))
        self._plans: dict[tuple[object, ...], list[str]] = {}

    def next_command(self) -> str | None:
        """The first command of a shortest plan from the current state; None when won or unsolvable."""
        plan = self.plan()
        return plan[0] if plan else None

    def plan(self) -> list[str] | None:
        """A shortest list of commands that wins from the current state ([] when already won)."""
        if self.game.won:
            return []
        key = self.game.state.key()
        if key not in self._plans:
            found = self._search()
            if found is None:
                return None
            self._remember(found)
        return list(self._plans[key])

    def _remember(self, plan: list[str]) -> None:
        """Cache the plan's tail at every state along it, so following the plan needs no new search."""
        game = self.game.copy()
        for i, command in enumerate(plan):
            self._plans[game.state.key()] = plan[i:]
            game.step(command)

    def _search(self) -> list[str] | None:
        start = self.game.copy()
        parents: dict[tuple[object, ...], tuple[tuple[object, ...] | None, str]] = {start.state.key(): (None, "")}
        frontier = deque([(start, 0)])
        while frontier:
            game, depth = frontier.popleft()
            if depth >= MAX_DEPTH or len(parents) > MAX_STATES:
                break
            key = game.state.key()
            for command in self._relevant(game):
                child = game.copy()
                child.step(command)
                child_key = child.state.key()
                if child_key in parents:
                    continue
                parents[child_key] = (key, command)
                if child.won:
                    return _path(parents, child_key)
                frontier.append((child, depth + 1))
        return None

    def _relevant(self, game: Game) -> list[str]:
        """The admissible commands that can matter for the goal (see the module docstring)."""
        w, st = game.world, game.state
        near = self._destinations(game)
        out = []
        for command in game.admissible_commands():
            verb, _, rest = command.partition(" ")
            if verb in ("go", "open"):
                ok = bool(near >> w.rec_by_name.get(rest.removeprefix("to "), -1) & 1)
            elif verb == "take":
                ok = bool(self.targets >> w.obj_by_name.get(rest.split(" from ", 1)[0], -1) & 1)
            elif verb == "move":
                stray = not (self.targets >> st.held & 1)
                ok = stray or bool(self.goal_recs >> w.rec_by_name.get(rest.split(" to ", 1)[1], -1) & 1)
            elif verb in ("heat", "cool", "clean"):
                ok = self._needs_station(st)  # only the held object can be heated, cooled or cleaned
            elif verb == "use":
                ok = bool(self.lamps >> w.obj_by_name.get(rest, -1) & 1)
            else:
                ok = False
            if ok:
                out.append(command)
        return out

    def _destinations(self, game: Game) -> int:
        """The receptacles worth going to (and opening) now: where the next step of the task can happen.

        Empty-handed, only receptacles holding a goal object; holding one, its station until it is
        heated/cooled/cleaned, then the goal receptacles or the lamp; holding anything else, where it can
        be put down. Going anywhere earlier never shortens a plan, and pruning it keeps the search small.
        """
        w, st = game.world, game.state
        if st.held < 0:
            return self._holding_recs(w, st.inrec, self.targets)
        if not (self.targets >> st.held & 1):
            return w.put_ok[st.held]
        if self._needs_station(st):
            return self.stations
        return self.goal_recs | self._holding_recs(w, st.inrec, self.lamps)

    def _needs_station(self, st: GameState) -> bool:
        """Whether the held goal object still lacks the state change the goal asks for."""
        return bool(self.stations) and not ((self.clean_needed and st.clean >> st.held & 1)
                                            or (self.hot_needed and st.hot >> st.held & 1)
                                            or (self.cool_needed and st.cool >> st.held & 1))

    @staticmethod
    def _holding_recs(w: World, inrec: list[int], objects: int) -> int:
        return _mask(r for r, contents in enumerate(inrec) if contents & objects)


def _path(parents: dict[tuple[object, ...], tuple[tuple[object, ...] | None, str]],
          key: tuple[object, ...]) -> list[str]:
    plan = []
    node: tuple[object, ...] | None = key
    while node is not None:
        parent, command = parents[node]
        if parent is not None:
            plan.append(command)
        node = parent
    return plan[::-1]


def _mask(indices: Iterable[int]) -> int:
    return sum({1 << i for i in indices})


def _atoms(formula: Formula) -> Iterator[Atom]:
    if isinstance(formula, Atom):
        yield formula
    elif isinstance(formula, Not):
        yield from _atoms(formula.body)
    elif isinstance(formula, And | Or):
        for part in formula.parts:
            yield from _atoms(part)
    elif isinstance(formula, Exists | Forall):
        yield from _atoms(formula.body)
