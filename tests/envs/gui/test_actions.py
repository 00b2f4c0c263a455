"""The pixel action space: parsing, bounds, and one key spelling translated for Playwright and xdotool."""

from __future__ import annotations

import pytest

from agentenv.envs.gui.actions import GuiActionError, parse_combo, parse_gui_action, playwright_keys, xdotool_keys


def test_the_last_action_line_wins_and_float_coordinates_are_rounded() -> None:
    action = parse_gui_action("I should click OK.\n`click(10.4, 20)`\n", (100, 100))
    assert (action.name, action.args) == ("click", (10, 20)) and str(action) == "click(10, 20)"
    assert parse_gui_action("drag(1, 2, 3, 4)").points() == [(1, 2), (3, 4)]
    assert parse_gui_action("done()").args == () and parse_gui_action("type('a b')").args == ("a b",)


@pytest.mark.parametrize(("text", "error"), [
    ("nothing here", "no action found"),
    ("fill(1, 'x')", "unknown action"),
    ("click(1)", "takes 2 argument"),
    ("click('a', 2)", "expected int"),
    ("click(True, 2)", "expected int"),
    ("click(__import__('os'), 1)", "cannot read"),
    ("click(100, 5)", "outside the 100x50 screen"),
    ("drag(1, 1, 5, 50)", "outside the 100x50 screen"),
    ("scroll(-1, 0, 0, 100)", "outside"),
    ("type('')", "1 to 2000 characters"),
    ("type('a\\x00b')", "printable text"),
    ("key('hyper+x')", "unknown modifier"),
    ("key('ctrl+nosuchkey')", "unknown key"),
    ("key('')", "combination"),
])
def test_bad_actions_are_explained(text: str, error: str) -> None:
    with pytest.raises(GuiActionError, match=error):
        parse_gui_action(text, (100, 50))


@pytest.mark.parametrize(("combo", "playwright", "xdotool"), [
    ("enter", "Enter", "Return"),
    ("Return", "Enter", "Return"),
    ("ctrl+a", "Control+a", "ctrl+a"),
    ("Control+Shift+Left", "Control+Shift+ArrowLeft", "ctrl+shift+Left"),
    ("cmd+c", "Meta+c", "super+c"),
    ("shift+tab", "Shift+Tab", "shift+Tab"),
    ("pagedown", "PageDown", "Next"),
    ("F5", "F5", "F5"),
    ("space", "Space", "space"),
    ("+", "+", "plus"),
    ("ctrl++", "Control++", "ctrl+plus"),
    ("/", "/", "slash"),
])
def test_one_key_spelling_for_both_backends(combo: str, playwright: str, xdotool: str) -> None:
    assert playwright_keys(combo) == playwright and xdotool_keys(combo) == xdotool


def test_modifier_aliases_are_canonical() -> None:
    assert parse_combo("Control+ALT+super+x") == (["ctrl", "alt", "meta"], "x")
