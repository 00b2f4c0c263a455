"""Δ, the page change a web world model predicts: the labeler's Δ rebuilds the next page exactly, its text
reads back equal, and a Δ that does not fit the page is rejected whole with its reasons."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentenv.envs.web.delta import (
    Delta,
    DeltaError,
    apply,
    diff,
    format_delta,
    line_keys,
    page_lines_overlap,
    parse_delta,
)

PAGE = "\n".join([
    "URL: http://127.0.0.1/shop",
    "Welcome",
    '[1] textbox "Search" value=""',
    '[2] button "Go"',
    "  Results",
    '  [3] checkbox "Red" unchecked',
    "  Red",
    '[4] link "Next"',
])


def test_keys_name_elements_their_text_lines_and_the_url():
    assert line_keys(PAGE.split("\n")) == ["URL", "[^]+1", "[1]", "[2]", "[2]+1", "[3]", "[3]+1", "[4]"]
    assert line_keys(['[5] button "a"', '[5] button "b"', "x"]) == ["[5]", "[5]#2", "[5]#2+1"]


def test_a_changed_element_is_one_readable_edit():
    after = PAGE.replace('[3] checkbox "Red" unchecked', '[3] checkbox "Red" checked')
    delta = diff(PAGE, after, reward=0.0, done=False)
    assert format_delta(delta) == 'reward: 0\ndone: no\n~ [3]\n|   [3] checkbox "Red" checked'
    assert apply(PAGE, delta) == after


def test_added_and_removed_elements_with_their_text():
    after = "\n".join([
        "URL: http://127.0.0.1/shop?q=red", "Welcome", '[1] textbox "Search" value="red"', '[2] button "Go"',
        "  Results", '  [5] link "Red shoes"', "  $12", '[4] link "Next"'])
    delta = diff(PAGE, after, reward=0.5, done=True, error="slow page")
    text = format_delta(delta)
    assert text.splitlines()[:3] == ["reward: 0.5", "done: yes", "error: slow page"]
    assert "~ URL\n| URL: http://127.0.0.1/shop?q=red" in text
    assert "- [3]" in text and '|   [5] link "Red shoes"' in text
    assert apply(PAGE, delta) == after
    assert parse_delta(text) == delta


def test_no_change_is_the_copy_of_the_page():
    delta = diff(PAGE, PAGE)
    assert delta.is_empty and format_delta(delta) == "reward: 0\ndone: no"
    assert apply(PAGE, parse_delta("reward: 0\ndone: no\n")) == PAGE


def test_insertions_at_the_top_and_after_the_last_line():
    after = f"Banner\n{PAGE}\nFooter"
    delta = diff(PAGE, after)
    assert delta.ops[0] == ("+", "[^]", ("Banner",))
    assert apply(PAGE, delta) == after


@pytest.mark.parametrize(("text", "reason"), [
    ("done: no", "no `reward:`"),
    ("reward: 1", "no `done:`"),
    ("reward: x\ndone: no", "not a number"),
    ("reward: nan\ndone: no", "not finite"),
    ("reward: 1\ndone: maybe", "yes or no"),
    ("reward: 0\ndone: no\n~ [3]", "exactly one"),
    ("reward: 0\ndone: no\n~ [3]\n| a\n| b", "exactly one"),
    ("reward: 0\ndone: no\n+ [3]", "no `| ` line"),
    ("reward: 0\ndone: no\n| stray", "belongs after"),
    ("reward: 0\ndone: no\n- [3]\n| a", "belongs after"),
    ("reward: 0\ndone: no\n~ [3]\n|a", "bar, space"),
    ("reward: 0\ndone: no\n- three", "not a line key"),
    ("reward: 0\ndone: no\nclick the button", "expected"),
    ("reward: 0\nreward: 1\ndone: no", "given twice"),
])
def test_malformed_text_is_rejected_with_the_reason(text, reason):
    with pytest.raises(DeltaError, match=reason):
        parse_delta(text)


@pytest.mark.parametrize(("delta", "reason"), [
    (Delta((("-", "[9]", ()),)), "no line \\[9\\]"),
    (Delta((("~", "[1]+4", ("x",)),)), "no line \\[1\\]\\+4"),
    (Delta((("-", "[3]", ()), ("~", "[3]", ("x",)))), "both removed and replaced"),
    (Delta((("-", "[3]", ()), ("-", "[3]", ()))), "removed 2 times"),
    (Delta((("-", "[3]", ()), ("+", "[3]", ("x",)))), "which is removed"),
    (Delta((("+", "[1]", ("x",)), ("+", "[1]", ("y",)))), "two insertions"),
    (Delta((("+", "[8]", ("x",)),)), "no line \\[8\\] to insert after"),
    (Delta((("~", "[1]", ("a\nb",)),)), "spans several lines"),
    (Delta((("~", "[1]", ()),)), "takes one line"),
])
def test_a_delta_that_does_not_fit_is_rejected_whole(delta, reason):
    with pytest.raises(DeltaError, match=reason):
        apply(PAGE, delta)


def test_every_reason_is_given_at_once():
    with pytest.raises(DeltaError) as caught:
        apply(PAGE, Delta((("-", "[9]", ()), ("+", "[8]", ("x",)))))
    assert "[9]" in str(caught.value) and "[8]" in str(caught.value)


def test_equality_ignores_the_order_of_edits_but_not_the_edits():
    a = Delta((("-", "[3]", ()), ("~", "[1]", ("x",))))
    assert a == Delta((("~", "[1]", ("x",)), ("-", "[3]", ())))
    assert a != Delta((("~", "[1]", ("y",)), ("-", "[3]", ())))
    assert a != Delta(a.ops, done=True)


def test_page_overlap_counts_repeated_lines():
    assert page_lines_overlap("a\nb\nb", "b\na\nc") == (2, 3, 3)


_lines = st.lists(st.one_of(
    st.builds(lambda d, i, label: f"{'  ' * d}[{i}] button \"{label}\"", st.integers(0, 2), st.integers(1, 6),
              st.sampled_from(["Go", "Buy", "Red", ""])),
    st.builds(lambda d, text: f"{'  ' * d}{text}", st.integers(0, 2),
              st.sampled_from(["Welcome", "Red", "$12", "", "[3]x", "| bar", "- dash"])),
    st.sampled_from(["URL: http://127.0.0.1/a", "URL: http://127.0.0.1/b", "reward: 1", "\r", "é ü"]),
), max_size=14)


@settings(max_examples=400, deadline=None)
@given(_lines, _lines, st.one_of(st.sampled_from([0.0, 1.0, -0.25]), st.floats(-10, 10)), st.booleans(),
       st.sampled_from([None, "no element with id 9", "Timeout 30000ms\n\n  waiting for locator"]))
def test_any_page_pair_round_trips(before, after, reward, done, error):
    page, next_page = "\n".join(before), "\n".join(after)
    delta = diff(page, next_page, reward=reward, done=done, error=error)
    assert apply(page, delta) == next_page
    assert parse_delta(format_delta(delta)) == delta
    if page == next_page:
        assert delta.is_empty
