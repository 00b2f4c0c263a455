"""The pixel-level action space shared by the browser and desktop GUI environments.

Actions are calls with literal arguments, parsed with `ast.literal_eval` (never evaluated), in screen
pixels of the observation's screenshot (origin at the top left):

    click(x, y)  double_click(x, y)  right_click(x, y)  type("text")  key("ctrl+a")
    scroll(x, y, dx, dy)  drag(x1, y1, x2, y2)  done()

Keys use one portable spelling (`ctrl`, `alt`, `shift`, `meta`, `enter`, `tab`, `escape`, `backspace`,
`delete`, `space`, `up`/`down`/`left`/`right`, `home`, `end`, `pageup`, `pagedown`, `f1`–`f12`, single
characters), joined by `+`; `playwright_keys` and `xdotool_keys` translate it for each backend. A wrong
name, arity, type, key or a point outside the screen is a `GuiActionError` whose message goes back to
the agent.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from agentenv.parsing import ActionParseError, ParsedAction

ACTIONS: dict[str, tuple[type, ...]] = {
    "click": (int, int), "double_click": (int, int), "right_click": (int, int), "type": (str,), "key": (str,),
    "scroll": (int, int, int, int), "drag": (int, int, int, int), "done": (),
}
SIGNATURES = {"click": "click(x, y)", "double_click": "double_click(x, y)", "right_click": "right_click(x, y)",
              "type": 'type("text")', "key": 'key("ctrl+a")', "scroll": "scroll(x, y, dx, dy)",
              "drag": "drag(x1, y1, x2, y2)", "done": "done()"}
EXPLAINED = {
    "click": "left click at pixel (x, y)", "double_click": "double left click at (x, y)",
    "right_click": "right click at (x, y)", "type": "type the text where the keyboard focus is",
    "key": "press a key or a combination of keys joined by '+'",
    "scroll": "move to (x, y) and scroll by dx, dy pixels (positive dy scrolls down, about 100 per wheel step)",
    "drag": "press the left button at (x1, y1), move to (x2, y2) and release",
    "done": "end the episode when the task is complete",
}
POINTS = {"click": 1, "double_click": 1, "right_click": 1, "scroll": 1, "drag": 2}
MAX_TYPE_CHARS = 2000
CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.DOTALL)

#: canonical modifier → (Playwright name, xdotool name); ALIASES maps what models write to the canonical one
MODIFIERS = {"ctrl": ("Control", "ctrl"), "alt": ("Alt", "alt"), "shift": ("Shift", "shift"),
             "meta": ("Meta", "super")}
ALIASES = {"ctrl": "ctrl", "control": "ctrl", "alt": "alt", "shift": "shift", "meta": "meta", "super": "meta",
           "cmd": "meta", "win": "meta"}
NAMED_KEYS = {
    "enter": ("Enter", "Return"), "return": ("Enter", "Return"), "tab": ("Tab", "Tab"),
    "escape": ("Escape", "Escape"), "esc": ("Escape", "Escape"), "backspace": ("Backspace", "BackSpace"),
    "delete": ("Delete", "Delete"), "space": ("Space", "space"), "up": ("ArrowUp", "Up"),
    "down": ("ArrowDown", "Down"), "left": ("ArrowLeft", "Left"), "right": ("ArrowRight", "Right"),
    "home": ("Home", "Home"), "end": ("End", "End"), "pageup": ("PageUp", "Prior"),
    "pagedown": ("PageDown", "Next"), "insert": ("Insert", "Insert"),
    **{f"f{i}": (f"F{i}", f"F{i}") for i in range(1, 13)},
}
XDOTOOL_CHARS = {" ": "space", "+": "plus", "-": "minus", ".": "period", ",": "comma", "/": "slash",
                 "=": "equal", ";": "semicolon", "'": "apostrophe", "[": "bracketleft", "]": "bracketright",
                 "\\": "backslash", "`": "grave"}


class GuiActionError(ValueError):
    """An action that cannot be carried out; the message goes back to the agent."""


@dataclass(frozen=True)
class GuiAction:
    name: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.name}({', '.join(repr(a) for a in self.args)})"

    def points(self) -> list[tuple[int, int]]:
        """The screen points the action touches (for bounds checks and for drawing it in the viewer)."""
        return [(self.args[2 * i], self.args[2 * i + 1]) for i in range(POINTS.get(self.name, 0))]


def parse_gui_action(text: str, screen: tuple[int, int] | None = None) -> GuiAction:
    """The last line of `text` that is an action call, checked against the screen size when given."""
    lines = [line.strip().strip("`") for line in text.strip().splitlines()]
    candidates = [line for line in lines if CALL.match(line)]
    if not candidates:
        raise GuiActionError(f"no action found; write one of: {', '.join(f'{n}(...)' for n in ACTIONS)}")
    match = CALL.match(candidates[-1])
    assert match is not None
    name, raw = match.group(1), match.group(2).strip()
    if name not in ACTIONS:
        raise GuiActionError(f"unknown action {name!r}; use one of {', '.join(ACTIONS)}")
    try:
        value = ast.literal_eval(f"({raw},)") if raw else ()
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise GuiActionError(f"cannot read the arguments of {name}: {exc}") from exc
    expected = ACTIONS[name]
    if len(value) != len(expected):
        raise GuiActionError(f"{name} takes {len(expected)} argument(s), got {len(value)}")
    args: list[Any] = []
    for got, want in zip(value, expected, strict=True):
        if want is int and isinstance(got, float) and got == got and abs(got) < 1e6:
            got = round(got)  # models often write 12.0
        if not isinstance(got, want) or isinstance(got, bool):
            raise GuiActionError(f"{name}: expected {want.__name__}, got {got!r:.40}")
        args.append(got)
    action = GuiAction(name, tuple(args))
    if name == "type" and not 0 < len(args[0]) <= MAX_TYPE_CHARS:
        raise GuiActionError(f"type takes 1 to {MAX_TYPE_CHARS} characters")
    if name == "type" and any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in args[0]):
        raise GuiActionError("type takes printable text (and \\n, \\t); press other keys with key(...)")
    if name == "key":
        parse_combo(args[0])
    if screen is not None:
        width, height = screen
        for x, y in action.points():
            if not (0 <= x < width and 0 <= y < height):
                raise GuiActionError(f"({x}, {y}) is outside the {width}x{height} screen")
    return action


def parse_combo(combo: str) -> tuple[list[str], str]:
    """`"ctrl+shift+a"` → (["ctrl", "shift"], "a"), in canonical names; GuiActionError when unknown."""
    if not combo or len(combo) > 40:
        raise GuiActionError("key takes a combination such as 'enter', 'ctrl+a' or 'shift+tab'")
    parts = [combo] if combo == "+" else combo.split("+")
    if combo.endswith("++"):
        parts = [*combo[:-2].split("+"), "+"]
    *mods, key = (p.strip() for p in parts)
    canonical_mods = []
    for mod in mods:
        if mod.lower() not in ALIASES:
            raise GuiActionError(f"unknown modifier {mod!r} in {combo!r}; use ctrl, alt, shift or meta")
        canonical_mods.append(ALIASES[mod.lower()])
    if len(key) == 1:
        return canonical_mods, key
    if key.lower() in NAMED_KEYS:
        return canonical_mods, key.lower()
    if key.lower() in ALIASES:
        return canonical_mods, ALIASES[key.lower()]
    raise GuiActionError(f"unknown key {key!r} in {combo!r}; use a single character or one of "
                         f"{', '.join(sorted(NAMED_KEYS))}")


def _spell(combo: str, backend: int) -> str:
    """The combination in one backend's spelling: 0 for Playwright, 1 for xdotool."""
    mods, key = parse_combo(combo)
    names = [MODIFIERS[m][backend] for m in mods]
    if key in NAMED_KEYS:
        names.append(NAMED_KEYS[key][backend])
    elif key in MODIFIERS:
        names.append(MODIFIERS[key][backend])
    else:
        names.append(XDOTOOL_CHARS.get(key, key) if backend == 1 else key)
    return "+".join(names)


def playwright_keys(combo: str) -> str:
    """The combination in Playwright's `keyboard.press` spelling (`Control+a`, `Shift+Tab`)."""
    return _spell(combo, 0)


def xdotool_keys(combo: str) -> str:
    """The combination in xdotool's keysym spelling (`ctrl+a`, `shift+Tab`, `Return`)."""
    return _spell(combo, 1)


def parsed_gui_action(text: str, screen: tuple[int, int]) -> ParsedAction:
    """`parse_gui_action` for an env's `parse_action`: errors become the agent's error observation."""
    try:
        action = parse_gui_action(text, screen)
    except GuiActionError as exc:
        raise ActionParseError(str(exc)) from exc
    return ParsedAction(text=text, command=str(action))


def screen_prompt(size: tuple[int, int], subject: str) -> str:
    """The system prompt of a GUI env: what is on the screen (`subject`), the coordinates and every action."""
    width, height = size
    lines = [f"  {SIGNATURES[name]}: {EXPLAINED[name]}" for name in ACTIONS]
    return (
        f"You operate {subject} shown as a {width}x{height} screenshot. Coordinates are pixels of the "
        f"screenshot: x from 0 (left) to {width - 1}, y from 0 (top) to {height - 1}. Act with exactly one "
        "action per reply, written on its last line:\n" + "\n".join(lines) + "\n"
        "Keys: ctrl, alt, shift, meta as modifiers; " + ", ".join(sorted(NAMED_KEYS))
        + ", or a single character; e.g. key(\"enter\"), key(\"ctrl+s\"), key(\"shift+tab\")."
    )
