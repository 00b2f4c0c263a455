"""A native, fast re-implementation of ALFWorld's text game (textworld ``PddlEnv`` + ALFWorld's ``alfred.twl2``).

Why: the real engine translates the problem with fast-downward on every reset (~1 s) and derives every sentence
through a context-sensitive grammar (milliseconds per step). Agent training and the expert planner need millions
of steps, so this module reproduces the same game (same commands, sentences, admissible lists and goal checks) in
plain Python over integer bitmasks: a step costs microseconds and an episode's state is a few hundred bytes.

Fidelity notes, each one observed on the real engine (textworld 1.7.0 + fast-downward, alfworld 0.4.2):

* ids are lowercased (fast-downward does) and named by ALFWorld's ``Demangler``: the ids that appear in some
  ``:init`` fact are sorted and, per base name, the FIRST sorted id gets the HIGHEST number.
* every listed sentence enumerates facts in sorted-id order (textworld sorts facts when it matches a query).
* ``go to R`` is never admissible when the agent already stands at R's location (fast-downward drops the no-op
  operator), and ``examine O`` is only admissible for the held object (the existential branch of
  ``examineObject``'s precondition never grounds).
* feedback is derived from the state AFTER the action, so ``use`` always says "You turn on".
* a picked-up object leaves a ``not_inreceptacle(o, r)`` fact behind; ``look`` lists objects at the agent's
  location that have such a fact for a receptacle there ("Next to it, you see ...").
* the intro's "middle of a room" lists every receptacle, but the ``look`` action there lists "nothing" (its
  location is bound); goal quantifiers over ``object`` range over every declared name (PDDL's root type).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .pddl import And, Atom, Exists, Forall, Formula, Not, Or, Problem, parse_problem

__all__ = ["HELP_TEXT", "NOTHING_HAPPENS", "Game", "GameState", "World", "demangle_names", "display_list"]

NOTHING_HAPPENS = "Nothing happens."
WELCOME = "-= Welcome to TextWorld, ALFRED! =-"
HELP_TEXT = (
    "Available commands:\n"
    "  look:                             look around your current location\n"
    "  inventory:                        check your current inventory\n"
    "  go to (receptacle):               move to a receptacle\n"
    "  open (receptacle):                open a receptacle\n"
    "  close (receptacle):               close a receptacle\n"
    "  take (object) from (receptacle):  take an object from a receptacle\n"
    "  move (object) to (receptacle):  place an object in or on a receptacle\n"
    "  examine (something):              examine a receptacle or an object\n"
    "  use (object):                     use an object\n"
    "  heat (object) with (receptacle):  heat an object using a receptacle\n"
    "  clean (object) with (receptacle): clean an object using a receptacle\n"
    "  cool (object) with (receptacle):  cool an object using a receptacle\n"
    "  slice (object) with (object):     slice an object using a sharp object\n"
)
TASK_PREFIX = "Your task is to: "
_STATIC_UNARY = ("openable", "cleanable", "heatable", "coolable", "toggleable", "sliceable", "pickupable",
                 "isreceptacleobject")
_DYNAMIC = frozenset({"atlocation", "opened", "inreceptacle", "holds", "holdsany", "objectatlocation", "isclean",
                      "ishot", "iscool", "ison", "istoggled", "issliced", "checked", "examined"})
_OBJECT_FLAGS = ("isclean", "ishot", "iscool", "ison", "istoggled", "issliced")


def display_list(items: list[str]) -> str:
    """textworld's list rendering: ``nothing`` / ``x`` / ``x, and y`` / ``x, y, and z``."""
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


def demangle_names(ids: Iterable[str]) -> dict[str, str]:
    """ALFWorld's ``Demangler`` (no shuffle): ``apple_bar__minus_00_dot_47_bar_...`` -> ``apple 2``.

    Ids without ``_bar_`` keep their text plus a trailing space (``"agent1 "``), exactly like the original.
    """
    ordered = sorted(set(ids))
    counts: Counter[str] = Counter()
    for ident in ordered:
        base = _base_name(ident)
        if base is not None:
            counts[base] += 1
    names: dict[str, str] = {}
    for ident in ordered:
        base = _base_name(ident)
        if base is None:
            names[ident] = _unmangle(ident) + " "
        else:
            names[ident] = f"{base} {counts[base]}"
            counts[base] -= 1
    return names


def _base_name(ident: str) -> str | None:
    if "_bar_" not in ident:
        return None
    base = ident.split("_bar_", 1)[0]
    return base + "basin" if "basin" in ident else base


def _unmangle(ident: str) -> str:
    for old, new in (("_bar_", "|"), ("_minus_", "-"), ("_plus_", "+"), ("_dot_", "."), ("_comma_", ",")):
        ident = ident.replace(old, new)
    return ident


def task_phrase(task: str) -> str:
    """Accept ``put a apple in fridge`` or ``Your task is to: put a apple in fridge.``; return the bare phrase."""
    text = task.strip()
    if text.startswith(TASK_PREFIX):
        text = text[len(TASK_PREFIX):]
    return text[:-1] if text.endswith(".") else text


def _bits(mask: int) -> Iterator[int]:
    """Indices of set bits, ascending (= sorted-id order, since indices follow sorted ids)."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class GameState:
    """The mutable part of one episode; everything else lives in the shared :class:`World`.

    Bitmasks are over object / receptacle indices. ``notin[r]`` records textworld's leftover
    ``not_inreceptacle(o, r)`` facts, which only the ``look`` sentence reads.
    """

    __slots__ = ("clean", "cool", "held", "holds_any", "hot", "inrec", "loc", "notin", "objloc", "on", "opened",
                 "sliced", "toggled", "won")

    def __init__(self) -> None:
        self.loc = -1
        self.held = -1
        self.holds_any = False
        self.opened = 0
        self.inrec: list[int] = []
        self.notin: list[int] = []
        self.objloc: list[int] = []
        self.clean = self.hot = self.cool = self.on = self.toggled = self.sliced = 0
        self.won = False

    def copy(self) -> GameState:
        """A cheap independent snapshot (three short int lists plus ints), for search and rollback."""
        new = GameState.__new__(GameState)
        new.loc, new.held, new.holds_any, new.opened = self.loc, self.held, self.holds_any, self.opened
        new.inrec, new.notin, new.objloc = self.inrec[:], self.notin[:], self.objloc[:]
        new.clean, new.hot, new.cool, new.on = self.clean, self.hot, self.cool, self.on
        new.toggled, new.sliced, new.won = self.toggled, self.sliced, self.won
        return new

    def key(self) -> tuple[object, ...]:
        """A hashable summary of the state (for visited sets in planners)."""
        return (self.loc, self.held, self.holds_any, self.opened, tuple(self.inrec), tuple(self.notin),
                tuple(self.objloc), self.clean, self.hot, self.cool, self.on, self.toggled, self.sliced)


@dataclass(frozen=True, slots=True)
class _Index:
    """Sorted ids of one PDDL type and their positions."""

    ids: tuple[str, ...]
    pos: dict[str, int]

    @classmethod
    def of(cls, ids: Iterable[str]) -> _Index:
        ordered = tuple(sorted(set(ids)))
        return cls(ordered, {ident: i for i, ident in enumerate(ordered)})


class World:
    """Everything static about one problem, precomputed once and shared by every episode of it."""

    def __init__(self, problem: Problem, task: str = "") -> None:
        self.problem = problem
        self.task = task_phrase(task)
        types = {name.lower(): typ.lower() for name, typ in problem.object_types().items()}
        facts = [tuple(part.lower() for part in fact) for fact in problem.init]
        self.init_facts = facts
        self.names = demangle_names(arg for fact in facts for arg in fact[1:])
        by_type: dict[str, list[str]] = {}
        for ident, typ in types.items():
            by_type.setdefault(typ, []).append(ident)
        self.obj = _Index.of(by_type.get("object", []))
        self.rec = _Index.of(by_type.get("receptacle", []))
        self.locs = _Index.of(by_type.get("location", []))
        self.by_type = {typ: tuple(sorted(ids)) for typ, ids in by_type.items()}
        self.all_ids = tuple(sorted(types))
        self._index_static(facts)
        self._index_names()
        self.goal = problem.goal
        self.goal_preds = _predicates(problem.goal)
        self._initial: GameState | None = None
        self.atoms_cache: dict[int, tuple[Formula, list[Atom]]] = {}

    def _index_static(self, facts: list[tuple[str, ...]]) -> None:
        nobj, nrec = len(self.obj.ids), len(self.rec.ids)
        self.static: dict[str, set[tuple[str, ...]]] = {}
        self._static_index: dict[str, _PredIndex] = {}
        for fact in facts:
            if fact[0] not in _DYNAMIC:
                self.static.setdefault(fact[0], set()).add(fact[1:])
        self.unary = {pred: self._obj_mask(a[0] for a in self.static.get(pred, ())) for pred in _STATIC_UNARY}
        self.openable = self._rec_mask(a[0] for a in self.static.get("openable", ()))
        self.otypes: list[set[str]] = [set() for _ in range(nobj)]
        self.rtypes: list[set[str]] = [set() for _ in range(nrec)]
        for o, t in self._type_pairs("objecttype", self.obj.pos):
            self.otypes[o].add(t)
        for r, t in self._type_pairs("receptacletype", self.rec.pos):
            self.rtypes[r].add(t)
        self.knives = self._obj_mask(self.obj.ids[o] for o in range(nobj)
                                     if self.otypes[o] & {"knifetype", "butterknifetype"})
        self.sinks = self._rec_type_mask("sinkbasintype")
        self.microwaves = self._rec_type_mask("microwavetype")
        self.fridges = self._rec_type_mask("fridgetype")
        contain = self.static.get("cancontain", set())
        self.put_ok = [sum(1 << r for r in range(nrec) if any((rt, ot) in contain for rt in self.rtypes[r]
                                                               for ot in self.otypes[o])) for o in range(nobj)]
        self.rec_locs: list[tuple[int, ...]] = [() for _ in range(nrec)]
        self.loc_recs: list[tuple[int, ...]] = [() for _ in self.locs.ids]
        for r, loc in sorted(self._pairs("receptacleatlocation", self.rec.pos, self.locs.pos)):
            self.rec_locs[r] += (loc,)
            self.loc_recs[loc] += (r,)
        self.inner: list[tuple[int, ...]] = [() for _ in range(nobj)]
        for inner, outer in sorted(self._pairs("inreceptacleobject", self.obj.pos, self.obj.pos)):
            self.inner[outer] += (inner,)

    def _pairs(self, pred: str, first: dict[str, int], second: dict[str, int]) -> list[tuple[int, int]]:
        """Binary static facts between two indexed types, as index pairs."""
        return [(first[a[0]], second[a[1]]) for a in self.static.get(pred, ())
                if len(a) == 2 and a[0] in first and a[1] in second]

    def _type_pairs(self, pred: str, first: dict[str, int]) -> list[tuple[int, str]]:
        """``objectType``-like facts: (index, type name)."""
        return [(first[a[0]], a[1]) for a in self.static.get(pred, ()) if len(a) == 2 and a[0] in first]

    def _obj_mask(self, ids: Iterable[str]) -> int:
        return sum({1 << self.obj.pos[i] for i in ids if i in self.obj.pos})

    def _rec_mask(self, ids: Iterable[str]) -> int:
        return sum({1 << self.rec.pos[i] for i in ids if i in self.rec.pos})

    def _rec_type_mask(self, rtype: str) -> int:
        return sum(1 << r for r, types in enumerate(self.rtypes) if rtype in types)

    def _index_names(self) -> None:
        self.oname = [self.names.get(i, i) for i in self.obj.ids]
        self.rname = [self.names.get(i, i) for i in self.rec.ids]
        self.obj_by_name = {n: o for o, n in enumerate(self.oname)}
        self.rec_by_name = {n: r for r, n in enumerate(self.rname)}
        self.goto_cmds = [f"go to {n}" for n in self.rname]

    def initial_state(self) -> GameState:
        """A fresh copy of the episode's first state (built from the dynamic ``:init`` facts once per world)."""
        if self._initial is None:
            self._initial = self._build_initial_state()
        return self._initial.copy()

    def _build_initial_state(self) -> GameState:
        st = GameState()
        st.inrec = [0] * len(self.rec.ids)
        st.notin = [0] * len(self.rec.ids)
        st.objloc = [0] * len(self.locs.ids)
        for fact in self.init_facts:
            self._apply_init_fact(st, fact)
        st.won = self.check_goal(st)
        return st

    def _apply_init_fact(self, st: GameState, fact: tuple[str, ...]) -> None:
        pred, args = fact[0], fact[1:]
        o = self.obj.pos.get(args[0], -1) if args else -1
        if pred == "atlocation" and st.loc < 0:
            st.loc = self.locs.pos.get(args[1], -1)
        elif pred == "opened" and args[0] in self.rec.pos:
            st.opened |= 1 << self.rec.pos[args[0]]
        elif pred == "inreceptacle" and o >= 0 and args[1] in self.rec.pos:
            st.inrec[self.rec.pos[args[1]]] |= 1 << o
        elif pred == "objectatlocation" and o >= 0 and args[1] in self.locs.pos:
            st.objloc[self.locs.pos[args[1]]] |= 1 << o
        elif pred == "holds" and len(args) == 2 and args[1] in self.obj.pos:
            st.held = self.obj.pos[args[1]]
        elif pred == "holdsany":
            st.holds_any = True
        elif pred in _OBJECT_FLAGS and o >= 0:
            attr = {"isclean": "clean", "ishot": "hot", "iscool": "cool", "ison": "on", "istoggled": "toggled",
                    "issliced": "sliced"}[pred]
            setattr(st, attr, getattr(st, attr) | 1 << o)

    # ------------------------------------------------------------------------------------------ goal

    def check_goal(self, st: GameState) -> bool:
        """Evaluate the ``:goal`` formula on ``st`` (FD semantics: quantifiers over the typed objects)."""
        facts = _FactView(self, st)
        return _holds(self.goal, {}, facts)

    def static_index(self, pred: str) -> _PredIndex:
        """The (cached) join index of a static predicate."""
        found = self._static_index.get(pred)
        if found is None:
            found = self._static_index[pred] = _PredIndex(self.static.get(pred, set()))
        return found

    def dynamic_facts(self, st: GameState, pred: str) -> set[tuple[str, ...]]:
        """The current ground tuples of a fluent predicate (lowercased ids), for goal checking and debugging."""
        o_ids, r_ids, l_ids = self.obj.ids, self.rec.ids, self.locs.ids
        agent = self.by_type.get("agent", ("agent1",))[0]
        if pred == "atlocation":
            return {(agent, l_ids[st.loc])} if st.loc >= 0 else set()
        if pred == "holds":
            return {(agent, o_ids[st.held])} if st.held >= 0 else set()
        if pred == "holdsany":
            return {(agent,)} if st.holds_any else set()
        if pred == "opened":
            return {(r_ids[r],) for r in _bits(st.opened)}
        if pred == "inreceptacle":
            return {(o_ids[o], r_ids[r]) for r, mask in enumerate(st.inrec) for o in _bits(mask)}
        if pred == "objectatlocation":
            return {(o_ids[o], l_ids[loc]) for loc, mask in enumerate(st.objloc) for o in _bits(mask)}
        attr = {"isclean": "clean", "ishot": "hot", "iscool": "cool", "ison": "on", "istoggled": "toggled",
                "issliced": "sliced"}.get(pred)
        if attr is not None:
            return {(o_ids[o],) for o in _bits(getattr(st, attr))}
        return set()


def _predicates(formula: Formula) -> frozenset[str]:
    if isinstance(formula, Atom):
        return frozenset({formula.pred.lower()})
    if isinstance(formula, (Not, Exists, Forall)):
        return _predicates(formula.body)
    return frozenset().union(*(_predicates(p) for p in formula.parts))


class _FactView:
    """Fact lookup for one goal check: static facts indexed once per world, fluents materialised on first use."""

    def __init__(self, world: World, st: GameState) -> None:
        self.world, self.st = world, st
        self.cache: dict[str, _PredIndex] = {}

    def index(self, pred: str) -> _PredIndex:
        found = self.cache.get(pred)
        if found is None:
            if pred in _DYNAMIC:
                found = _PredIndex(self.world.dynamic_facts(self.st, pred))
            else:
                found = self.world.static_index(pred)
            self.cache[pred] = found
        return found

    def necessary_atoms(self, body: Formula) -> list[Atom]:
        """:func:`_necessary_atoms`, memoised per formula node on the world (goals are checked many times)."""
        cache = self.world.atoms_cache
        hit = cache.get(id(body))
        if hit is None or hit[0] is not body:
            hit = cache[id(body)] = (body, _necessary_atoms(body))
        return hit[1]

    def domain(self, typ: str) -> tuple[str, ...]:
        """Quantifier domain. ``object`` is PDDL's root type: every declared name (agent, locations, types...)."""
        typ = typ.lower()
        return self.world.all_ids if typ == "object" else self.world.by_type.get(typ, ())


class _PredIndex:
    """The ground tuples of one predicate, with a lazy ``(position, value) -> tuples`` index for joins."""

    __slots__ = ("by_pos", "facts")

    def __init__(self, facts: set[tuple[str, ...]]) -> None:
        self.facts = facts
        self.by_pos: dict[tuple[int, str], list[tuple[str, ...]]] | None = None

    def matching(self, fixed: list[tuple[int, str]]) -> Iterable[tuple[str, ...]]:
        if not fixed:
            return self.facts
        if self.by_pos is None:
            self.by_pos = {}
            for fact in self.facts:
                for i, value in enumerate(fact):
                    self.by_pos.setdefault((i, value), []).append(fact)
        return self.by_pos.get(fixed[0], ())


def _ground(args: tuple[str, ...], binding: dict[str, str]) -> tuple[str, ...]:
    return tuple(binding.get(a, a) if a.startswith("?") else a.lower() for a in args)


def _holds(formula: Formula, binding: dict[str, str], view: _FactView) -> bool:
    if isinstance(formula, Atom):
        args = _ground(formula.args, binding)
        if formula.pred == "=":
            return args[0] == args[1]
        return args in view.index(formula.pred.lower()).facts
    if isinstance(formula, Not):
        return not _holds(formula.body, binding, view)
    if isinstance(formula, And):
        return all(_holds(p, binding, view) for p in formula.parts)
    if isinstance(formula, Or):
        return any(_holds(p, binding, view) for p in formula.parts)
    if isinstance(formula, Exists):
        return any(True for _ in _solutions(list(formula.variables), formula.body, binding, view))
    names = [v for v, _ in formula.variables]
    return all(_holds(formula.body, {**binding, **dict(zip(names, combo, strict=True))}, view)
               for combo in _product([view.domain(t) for _, t in formula.variables]))


def _product(domains: list[tuple[str, ...]]) -> Iterator[tuple[str, ...]]:
    if not domains:
        yield ()
        return
    for head in domains[0]:
        for tail in _product(domains[1:]):
            yield (head, *tail)


def _solutions(variables: list[tuple[str, str]], body: Formula, binding: dict[str, str],
               view: _FactView) -> Iterator[None]:
    """Bind existential variables one at a time, drawing candidates from a positive atom that must hold."""
    if not variables:
        if _holds(body, binding, view):
            yield None
        return
    var, typ = variables[0]
    for value in _candidates(var, typ, body, binding, view):
        binding[var] = value
        try:
            yield from _solutions(variables[1:], body, binding, view)
        finally:
            del binding[var]


def _necessary_atoms(formula: Formula) -> list[Atom]:
    """Atoms that must hold for ``formula`` to hold (through and / exists), used to prune quantifier domains."""
    if isinstance(formula, Atom):
        return [] if formula.pred == "=" else [formula]
    if isinstance(formula, And):
        return [atom for part in formula.parts for atom in _necessary_atoms(part)]
    if isinstance(formula, Exists):
        return _necessary_atoms(formula.body)
    return []


def _candidates(var: str, typ: str, body: Formula, binding: dict[str, str], view: _FactView) -> Iterable[str]:
    best: set[str] | None = None
    for atom in view.necessary_atoms(body):
        if var not in atom.args:
            continue
        pos = atom.args.index(var)
        ground = _ground(atom.args, binding)
        fixed = [(i, a) for i, a in enumerate(ground) if not a.startswith("?")]
        found = {t[pos] for t in view.index(atom.pred.lower()).matching(fixed)
                 if len(t) == len(ground) and all(t[i] == a for i, a in fixed)}
        best = found if best is None else best & found
        if not best:
            return ()
    return view.domain(typ) if best is None else best


# ---------------------------------------------------------------------------------------------- the game

Handler = Callable[["Game", tuple[int, ...]], str]


class Game:
    """One playable episode: ``reset()``, ``step(command)``, ``admissible_commands()``, ``won``, ``copy()``.

    Many games may share one :class:`World` (``Game(world)``), so a thousand live episodes cost only their
    :class:`GameState` each.
    """

    def __init__(self, world: World | Problem, task: str = "") -> None:
        self.world = world if isinstance(world, World) else World(world, task)
        self.state = self.world.initial_state()

    @classmethod
    def from_pddl(cls, text: str, task: str = "") -> Game:
        """Parse a problem's text and build a game for it."""
        return cls(World(parse_problem(text), task))

    @property
    def won(self) -> bool:
        """Whether the goal holds in the current state (checked after every step, as textworld does)."""
        return self.state.won

    def copy(self) -> Game:
        """A new game sharing the world and owning a copy of the state."""
        new = Game.__new__(Game)
        new.world, new.state = self.world, self.state.copy()
        return new

    def reset(self) -> str:
        """Restart the episode; returns the intro (banner, look sentence, task line) exactly as ALFWorld does."""
        self.state = self.world.initial_state()
        return f"{WELCOME}\n\n{self._look(intro=True)}\n\n{TASK_PREFIX}{self.world.task}."

    # ------------------------------------------------------------------------------------ stepping

    def step(self, command: str) -> tuple[str, bool]:
        """Play one command; an unknown or inapplicable command returns "Nothing happens." and changes nothing."""
        parsed = self._parse(command.strip())
        if parsed is None or not _APPLICABLE[parsed[0]](self, parsed[1]):
            return NOTHING_HAPPENS, self.state.won
        kind, args = parsed
        text = _EFFECTS[kind](self, args)
        if _CHANGES[kind] & self.world.goal_preds:
            self.state.won = self.world.check_goal(self.state)
        return text, self.state.won

    def _parse(self, cmd: str) -> tuple[str, tuple[int, ...]] | None:
        if cmd in ("look", "inventory", "help"):
            return cmd, ()
        verb, _, rest = cmd.partition(" ")
        w = self.world
        if verb == "go" and rest.startswith("to "):
            r = w.rec_by_name.get(rest[3:])
            return None if r is None else ("goto", (r,))
        if verb in ("open", "close"):
            r = w.rec_by_name.get(rest)
            return None if r is None else (verb, (r,))
        if verb == "examine":
            r = w.rec_by_name.get(rest)
            if r is not None:
                return "examine_r", (r,)
            o = w.obj_by_name.get(rest)
            return None if o is None else ("examine_o", (o,))
        if verb == "use":
            o = w.obj_by_name.get(rest)
            return None if o is None else ("use", (o,))
        sep = {"take": " from ", "move": " to ", "heat": " with ", "clean": " with ", "cool": " with ",
               "slice": " with "}.get(verb)
        if sep is None or sep not in rest:
            return None
        first, _, second = rest.partition(sep)
        o = w.obj_by_name.get(first)
        other = (w.obj_by_name if verb == "slice" else w.rec_by_name).get(second)
        return None if o is None or other is None else (verb, (o, other))

    # ------------------------------------------------------------------------------------ admissible

    def admissible_commands(self) -> list[str]:
        """Every applicable action's command, deduplicated and sorted (textworld's ``admissible_commands``)."""
        w, st = self.world, self.state
        cmds = ["help", "inventory", "look"]
        here = w.loc_recs[st.loc] if st.loc >= 0 else ()
        if st.loc >= 0:
            cmds.extend(w.goto_cmds[r] for r in range(len(w.rname)) if any(loc != st.loc for loc in w.rec_locs[r]))
        for r in here:
            cmds.extend(self._receptacle_commands(r))
        if st.held >= 0:
            cmds.append(f"examine {w.oname[st.held]}")
        if st.held >= 0 and w.knives >> st.held & 1:
            objs = st.objloc[st.loc] if st.loc >= 0 else 0
            cmds.extend(f"slice {w.oname[co]} with {w.oname[st.held]}" for co in _bits(objs & w.unary["sliceable"]))
        return sorted(set(cmds))

    def _receptacle_commands(self, r: int) -> Iterator[str]:
        w, st = self.world, self.state
        rn = w.rname[r]
        yield f"examine {rn}"
        accessible = not (w.openable >> r & 1) or bool(st.opened >> r & 1)
        if w.openable >> r & 1:
            yield f"close {rn}" if st.opened >> r & 1 else f"open {rn}"
        for o in _bits(st.inrec[r] & w.unary["toggleable"]):
            yield f"use {w.oname[o]}"
        if accessible and not st.holds_any:
            for o in _bits(st.inrec[r] & w.unary["pickupable"]):
                yield f"take {w.oname[o]} from {rn}"
        if st.held < 0:
            return
        on = w.oname[st.held]
        if accessible and w.put_ok[st.held] >> r & 1:
            yield f"move {on} to {rn}"
        for verb, recs, flag in (("clean", w.sinks, "cleanable"), ("heat", w.microwaves, "heatable"),
                                 ("cool", w.fridges, "coolable")):
            if recs >> r & 1 and w.unary[flag] >> st.held & 1:
                yield f"{verb} {on} with {rn}"

    # ------------------------------------------------------------------------------------ sentences

    def _receptacle_text(self, r: int) -> str:
        w, st = self.world, self.state
        name = w.rname[r]
        contents = display_list([f"a {w.oname[o]}" for o in _bits(st.inrec[r])])
        if w.openable >> r & 1:
            if st.opened >> r & 1:
                return f"The {name} is open. In it, you see {contents}."
            return f"The {name} is closed."
        return f"On the {name}, you see {contents}."

    def _look(self, intro: bool = False) -> str:
        """The ``look`` sentence. In the intro no location is bound, so "the middle of a room" lists every
        receptacle; the ``look`` action binds the agent's location, so there it lists only those here (none)."""
        w, st = self.world, self.state
        here = w.loc_recs[st.loc] if st.loc >= 0 else ()
        if here:
            facing = display_list([w.rname[r] for r in here])
            floor = [f"a {w.oname[o]}" for o in _bits(st.objloc[st.loc]) for r in here if st.notin[r] >> o & 1]
            return f"You are facing the {facing}. Next to it, you see {display_list(floor)}."
        around = [f"a {w.rname[r]}" for r in range(len(w.rname)) for loc in w.rec_locs[r] if intro or loc == st.loc]
        return f"You are in the middle of a room. Looking quickly around you, you see {display_list(around)}."

    def _object_text(self, o: int) -> str:
        w, st = self.world, self.state
        name = w.oname[o]
        if w.unary["isreceptacleobject"] >> o & 1:
            inside = display_list([f"a {w.oname[i]}" for i in w.inner[o] if i != o])
            return f"This is a normal {name}. In it, you see {inside}."
        clean, hot, cool, sliced = (bool(m >> o & 1) for m in (st.clean, st.hot, st.cool, st.sliced))
        for cond, text in ((clean and hot and sliced, "a hot and clean sliced"),
                           (clean and cool and sliced, "a cool and clean sliced"), (clean and sliced, "a clean sliced"),
                           (hot and sliced, "a hot sliced"), (cool and sliced, "a cool sliced"),
                           (clean and hot, "a hot and clean"), (clean and cool, "a cool and clean"), (hot, "a hot"),
                           (clean, "a clean"), (cool, "a cold")):
            if cond:
                return f"This is {text} {name}."
        if w.unary["toggleable"] >> o & 1 and st.toggled >> o & 1:
            return f"This {name} is on."
        if w.unary["sliceable"] >> o & 1 and sliced:
            return f"This is a sliced {name}."
        return f"There's nothing special about {name}."


# ---------------------------------------------------------------------------------------------- actions


def _here(g: Game, r: int) -> bool:
    return g.state.loc in g.world.rec_locs[r]


def _accessible(g: Game, r: int) -> bool:
    return not (g.world.openable >> r & 1) or bool(g.state.opened >> r & 1)


def _can_goto(g: Game, a: tuple[int, ...]) -> bool:
    return g.state.loc >= 0 and any(loc != g.state.loc for loc in g.world.rec_locs[a[0]])


def _can_open(g: Game, a: tuple[int, ...]) -> bool:
    return bool(g.world.openable >> a[0] & 1) and _here(g, a[0]) and not g.state.opened >> a[0] & 1


def _can_close(g: Game, a: tuple[int, ...]) -> bool:
    return bool(g.world.openable >> a[0] & 1) and _here(g, a[0]) and bool(g.state.opened >> a[0] & 1)


def _can_take(g: Game, a: tuple[int, ...]) -> bool:
    o, r = a
    return (bool(g.world.unary["pickupable"] >> o & 1) and _here(g, r) and bool(g.state.inrec[r] >> o & 1)
            and not g.state.holds_any and _accessible(g, r))


def _can_move(g: Game, a: tuple[int, ...]) -> bool:
    o, r = a
    return g.state.held == o and _here(g, r) and _accessible(g, r) and bool(g.world.put_ok[o] >> r & 1)


def _can_with(recs: str, flag: str) -> Callable[[Game, tuple[int, ...]], bool]:
    def check(g: Game, a: tuple[int, ...]) -> bool:
        o, r = a
        w = g.world
        return (bool(w.unary[flag] >> o & 1) and bool(getattr(w, recs) >> r & 1) and _here(g, r)
                and g.state.held == o)

    return check


def _can_use(g: Game, a: tuple[int, ...]) -> bool:
    o = a[0]
    return bool(g.world.unary["toggleable"] >> o & 1) and any(
        g.state.inrec[r] >> o & 1 for r in (g.world.loc_recs[g.state.loc] if g.state.loc >= 0 else ()))


def _can_slice(g: Game, a: tuple[int, ...]) -> bool:
    co, ko = a
    st = g.state
    return (bool(g.world.unary["sliceable"] >> co & 1) and bool(g.world.knives >> ko & 1) and st.loc >= 0
            and bool(st.objloc[st.loc] >> co & 1) and st.held == ko)


def _goto(g: Game, a: tuple[int, ...]) -> str:
    r = a[0]
    g.state.loc = next(loc for loc in g.world.rec_locs[r] if loc != g.state.loc)
    return f"You arrive at {g.world.rname[r]}. {g._receptacle_text(r)}"


def _open(g: Game, a: tuple[int, ...]) -> str:
    g.state.opened |= 1 << a[0]
    return f"You open the {g.world.rname[a[0]]}. {g._receptacle_text(a[0])}"


def _close(g: Game, a: tuple[int, ...]) -> str:
    g.state.opened &= ~(1 << a[0])
    return f"You close the {g.world.rname[a[0]]}."


def _take(g: Game, a: tuple[int, ...]) -> str:
    o, r = a
    st = g.state
    st.inrec[r] &= ~(1 << o)
    st.notin[r] |= 1 << o
    st.held, st.holds_any = o, True
    st.objloc[st.loc] &= ~(1 << o)
    return f"You pick up the {g.world.oname[o]} from the {g.world.rname[r]}."


def _move(g: Game, a: tuple[int, ...]) -> str:
    o, r = a
    st = g.state
    st.inrec[r] |= 1 << o
    st.notin[r] &= ~(1 << o)
    st.objloc[st.loc] |= 1 << o
    st.held, st.holds_any = -1, False
    return f"You move the {g.world.oname[o]} to the {g.world.rname[r]}."


def _clean(g: Game, a: tuple[int, ...]) -> str:
    g.state.clean |= 1 << a[0]
    return f"You clean the {g.world.oname[a[0]]} using the {g.world.rname[a[1]]}."


def _heat(g: Game, a: tuple[int, ...]) -> str:
    g.state.hot |= 1 << a[0]
    g.state.cool &= ~(1 << a[0])
    return f"You heat the {g.world.oname[a[0]]} using the {g.world.rname[a[1]]}."


def _cool(g: Game, a: tuple[int, ...]) -> str:
    g.state.cool |= 1 << a[0]
    g.state.hot &= ~(1 << a[0])
    return f"You cool the {g.world.oname[a[0]]} using the {g.world.rname[a[1]]}."


def _use(g: Game, a: tuple[int, ...]) -> str:
    g.state.on ^= 1 << a[0]
    g.state.toggled |= 1 << a[0]
    return f"You turn on the {g.world.oname[a[0]]}."


def _slice(g: Game, a: tuple[int, ...]) -> str:
    g.state.sliced |= 1 << a[0]
    return f"You sliced the {g.world.oname[a[0]]} with the {g.world.oname[a[1]]}."


def _inventory(g: Game, a: tuple[int, ...]) -> str:
    st = g.state
    if not st.holds_any:
        return "You are not carrying anything."
    held = [f"a {g.world.oname[st.held]}"] if st.held >= 0 else []
    return f"You are carrying: {display_list(held)}."


def _always(g: Game, a: tuple[int, ...]) -> bool:
    return True


_APPLICABLE: dict[str, Callable[[Game, tuple[int, ...]], bool]] = {
    "look": _always, "inventory": _always, "help": _always,
    "goto": _can_goto, "open": _can_open, "close": _can_close, "take": _can_take, "move": _can_move,
    "clean": _can_with("sinks", "cleanable"), "heat": _can_with("microwaves", "heatable"),
    "cool": _can_with("fridges", "coolable"), "use": _can_use, "slice": _can_slice,
    "examine_r": lambda g, a: _here(g, a[0]), "examine_o": lambda g, a: g.state.held == a[0],
}
_EFFECTS: dict[str, Handler] = {
    "look": lambda g, a: g._look(), "inventory": _inventory, "help": lambda g, a: HELP_TEXT,
    "goto": _goto, "open": _open, "close": _close, "take": _take, "move": _move, "clean": _clean, "heat": _heat,
    "cool": _cool, "use": _use, "slice": _slice,
    "examine_r": lambda g, a: g._receptacle_text(a[0]), "examine_o": lambda g, a: g._object_text(a[0]),
}
_HANDS = frozenset({"inreceptacle", "holds", "holdsany", "objectatlocation"})
_CHANGES: dict[str, frozenset[str]] = {
    "look": frozenset(), "inventory": frozenset(), "help": frozenset(), "examine_r": frozenset(),
    "examine_o": frozenset(), "goto": frozenset({"atlocation"}), "open": frozenset({"opened"}),
    "close": frozenset({"opened"}), "take": _HANDS, "move": _HANDS, "clean": frozenset({"isclean"}),
    "heat": frozenset({"ishot", "iscool"}), "cool": frozenset({"ishot", "iscool"}),
    "use": frozenset({"ison", "istoggled"}), "slice": frozenset({"issliced"}),
}
"""Which fluents each action can change: the goal is re-checked only when one it mentions may have changed."""
