"""The ALFRED problem parser (``agentenv.envs.alfworld.pddl``): structure, goal formulas, and line-numbered errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentenv.envs.alfworld.pddl import And, Atom, Exists, Forall, Not, Or, PddlError, parse_problem

PROBLEM = """\
(define (problem plan_trial_T1)
    (:domain alfred)
    (:metric minimize (totalCost))
    (:objects
        agent1 - agent
        AppleType FridgeType - otype
        Apple_bar__minus_00_dot_47_bar__plus_01_dot_15 - object
        Fridge_bar__minus_02_dot_00 - receptacle
        loc_bar__minus_4_bar_3_bar_0_bar_45 - location
        untyped_thing
    )
    (:init
        (= (totalCost) 0) ; numeric facts are skipped
        (atLocation agent1 loc_bar__minus_4_bar_3_bar_0_bar_45)
        (wasInReceptacle  Apple_bar__minus_00_dot_47_bar__plus_01_dot_15 Fridge_bar__minus_02_dot_00)
    )
    (:goal
        (and
            (exists (?r - receptacle)
                (exists (?o1 ?o2 - object)
                    (and (inReceptacle ?o1 ?r) (not (= ?o1 ?o2)) (or (isHot ?o1) (isCool ?o1)))))
            (forall (?x - object) (pickupable ?x))
        )
    )
)
"""


def test_parses_objects_init_and_goal() -> None:
    problem = parse_problem(PROBLEM)
    assert problem.name == "plan_trial_T1"
    assert problem.domain == "alfred"
    assert problem.objects["otype"] == ["AppleType", "FridgeType"]
    assert problem.objects["object"] == ["Apple_bar__minus_00_dot_47_bar__plus_01_dot_15", "untyped_thing"]
    assert problem.object_types()["agent1"] == "agent"
    assert problem.init == [
        ("atLocation", "agent1", "loc_bar__minus_4_bar_3_bar_0_bar_45"),
        ("wasInReceptacle", "Apple_bar__minus_00_dot_47_bar__plus_01_dot_15", "Fridge_bar__minus_02_dot_00"),
    ]


def test_goal_formula_ast() -> None:
    goal = parse_problem(PROBLEM).goal
    inner = And((
        Atom("inReceptacle", ("?o1", "?r")),
        Not(Atom("=", ("?o1", "?o2"))),
        Or((Atom("isHot", ("?o1",)), Atom("isCool", ("?o1",)))),
    ))
    assert goal == And((
        Exists((("?r", "receptacle"),), Exists((("?o1", "object"), ("?o2", "object")), inner)),
        Forall((("?x", "object"),), Atom("pickupable", ("?x",))),
    ))


def test_parses_every_sample_problem() -> None:
    samples = sorted((Path(__file__).resolve().parents[3] / "envs" / "alfworld" / "samples").glob("*.pddl"))
    for path in samples:
        problem = parse_problem(path.read_text())
        assert problem.objects["agent"] == ["agent1"]
        assert any(fact[0] == "atLocation" for fact in problem.init)
        assert isinstance(problem.goal, And)


def _error(text: str) -> PddlError:
    with pytest.raises(PddlError) as info:
        parse_problem(text)
    return info.value


def test_unclosed_paren_names_its_line() -> None:
    err = _error("(define (problem p)\n  (:domain alfred)\n  (:init (a b)\n  (:goal (and))\n")
    assert err.line == 3 and str(err).startswith("line 3: ")  # the innermost list still open: (:init
    assert "unbalanced" in str(err) and err.token == "("


def test_unclosed_inner_paren_points_at_the_innermost_open_list() -> None:
    err = _error("(define (problem p)\n  (:domain alfred)\n  (:goal (and (p x)\n)")
    assert err.line == 3 and "never closed" in str(err)


def test_extra_close_paren_names_its_line() -> None:
    err = _error("(define (problem p)\n (:domain alfred)\n (:goal (and)))\n)\n")
    assert err.line == 4 and err.token == ")"
    assert str(err).startswith("line 4: ")


def test_unknown_section_names_line_and_keyword() -> None:
    err = _error("(define (problem p)\n (:domain alfred)\n\n (:bogus a b)\n (:goal (and)))")
    assert err.line == 4 and err.token == ":bogus"
    assert "unknown section" in str(err) and "':bogus'" in str(err)


def test_bad_token_names_line_and_token() -> None:
    err = _error("(define (problem p)\n (:domain alfred)\n (:init (at {agent}))\n (:goal (and)))")
    assert err.line == 3 and err.token == "{agent}"
    assert str(err) == "line 3: bad token at '{agent}'"


def test_fact_must_be_a_list() -> None:
    err = _error("(define (problem p)\n (:domain alfred)\n (:init\n   stray)\n (:goal (and)))")
    assert err.line == 4 and err.token == "stray"


def test_missing_goal_is_an_error() -> None:
    assert "no (:goal" in str(_error("(define (problem p) (:domain alfred) (:init))"))


def test_not_takes_one_formula() -> None:
    err = _error("(define (problem p) (:domain alfred)\n (:goal (not (a) (b))))")
    assert err.line == 2 and err.token == "not"
