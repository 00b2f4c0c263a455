"""The change between two pages as a compact, readable edit (DynaWeb's Δ), and its exact application.

A page is the text a web env shows (`agentenv.envs.web.page`): a `URL:` line, then one line per element
with an id (`[12] button "Buy"`) and lines of plain text, indented by depth. Every line has a key that an
edit can name: `URL` for the URL line, `[12]` for the line of element 12 (`[12]#2` for a second line
bearing that id), `[12]+1`, `[12]+2`... for the text lines after it, and `[^]+1`... for text above the
first element. Keys name lines of the page *before* the action; the lines an action adds are written out.

The world model writes Δ as text, which is also how the labeler shows it::

    reward: 0
    done: no
    error: no element with id 9        (only when the env reported an error)
    - [7]                              remove the line [7]
    ~ [12]                             replace the line [12] with the line below
    | [12] checkbox "Lc" checked
    + [12]                             insert the lines below after the line [12] (`+ [^]`: at the top)
    |   [13] button "Go"
    |   Some text

`diff(page, next_page)` computes Δ from two pages (lines are matched by content, then paired by element id,
so a changed element is one `~`); `apply(page, Δ)` rebuilds the next page exactly. A Δ that does not fit
the page (an unknown key, a line both removed and changed, an insertion after a removed line) is rejected
whole with every reason, never half-applied.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

TOP = "[^]"
_ELEMENT = re.compile(r"^(\s*)\[(\d+)\] ")
_KEY = re.compile(r"URL|\[\^\]\+[1-9]\d*|\[\d+\](?:#[2-9]\d*|#[1-9]\d+)?(?:\+[1-9]\d*)?")
_OP = re.compile(r"^([-~+]) (\S+)$")


class DeltaError(ValueError):
    """A Δ that cannot be read, or that does not fit the page it is applied to; the message says why."""


Op = tuple[str, str, tuple[str, ...]]


@dataclass(frozen=True, eq=False)
class Delta:
    """One predicted or labelled page change, with the step's reward and whether the task ended.

    ``ops`` are ``(sign, key, lines)`` in the order they are written: ``("-", key, ())``, ``("~", key, (line,))``
    or ``("+", anchor, lines)``. Two Δs are equal when they make the same edits, whatever their order."""

    ops: tuple[Op, ...] = ()
    reward: float = 0.0
    done: bool = False
    error: str | None = None
    #: a world model's reasoning before its edit (kept for audit; not part of the change)
    reasoning: str | None = None

    @property
    def removed(self) -> list[str]:
        return [key for sign, key, _ in self.ops if sign == "-"]

    @property
    def changed(self) -> list[tuple[str, str]]:
        return [(key, lines[0]) for sign, key, lines in self.ops if sign == "~" and lines]

    @property
    def inserted(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(key, lines) for sign, key, lines in self.ops if sign == "+"]

    @property
    def is_empty(self) -> bool:
        """No line changes (the reward, done flag and error may still say something)."""
        return not self.ops

    def edits(self) -> Delta:
        """The same change without the reward, done flag, error and reasoning."""
        return Delta(self.ops)

    def _key(self) -> tuple[object, ...]:
        return (frozenset(self.ops), len(self.ops), self.reward, self.done, self.error)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Delta) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def line_keys(lines: Sequence[str]) -> list[str]:
    """The key of every line of a page (see the module docstring); keys are unique within a page."""
    keys: list[str] = []
    seen: dict[str, int] = {}
    current, text_lines = TOP, 0
    for i, line in enumerate(lines):
        if i == 0 and line.startswith("URL: "):
            keys.append("URL")
            continue
        match = _ELEMENT.match(line)
        if match:
            base = f"[{match.group(2)}]"
            seen[base] = seen.get(base, 0) + 1
            current = base if seen[base] == 1 else f"{base}#{seen[base]}"
            text_lines = 0
            keys.append(current)
        else:
            text_lines += 1
            keys.append(f"{current}+{text_lines}")
    return keys


def diff(page: str, next_page: str, *, reward: float = 0.0, done: bool = False,
         error: str | None = None) -> Delta:
    """The Δ that turns ``page`` into ``next_page`` (``apply(page, diff(page, next_page)) == next_page``); the
    reward is kept to 4 decimals and the error on one line, as Δ's text holds them."""
    old, new = page.split("\n"), next_page.split("\n")
    keys = line_keys(old)
    removed: list[str] = []
    changed: dict[str, str] = {}
    inserted: dict[str, list[str]] = {}
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        pairs = dict(_pair_lines(old[i1:i2], new[j1:j2]))  # new offset -> old offset
        kept_old = set(pairs.values())
        removed += [keys[i] for i in range(i1, i2) if i - i1 not in kept_old]
        anchor = keys[i1 - 1] if i1 > 0 else TOP
        for j in range(j1, j2):
            if j - j1 in pairs:
                i = i1 + pairs[j - j1]
                if old[i] != new[j]:
                    changed[keys[i]] = new[j]
                anchor = keys[i]
            else:
                inserted.setdefault(anchor, []).append(new[j])
    ops: list[Op] = [("+", TOP, tuple(inserted[TOP]))] if TOP in inserted else []
    gone = set(removed)
    for key in keys:
        if key in gone:
            ops.append(("-", key, ()))
        if key in changed:
            ops.append(("~", key, (changed[key],)))
        if key in inserted:
            ops.append(("+", key, tuple(inserted[key])))
    return Delta(tuple(ops), reward=round(float(reward), 4), done=bool(done),
                 error=" ".join(error.split()) if error else None)


def _pair_lines(old: Sequence[str], new: Sequence[str]) -> list[tuple[int, int]]:
    """Lines of a changed block that stay the same line: elements with the same id, text lines at the same
    depth, in order. Returned as (new offset, old offset)."""
    def kind(line: str) -> tuple[str, str]:
        match = _ELEMENT.match(line)
        if match:
            return "element", match.group(2)
        return "text", str(len(line) - len(line.lstrip(" ")))

    matcher = difflib.SequenceMatcher(None, [kind(x) for x in old], [kind(x) for x in new], autojunk=False)
    return [(b + k, a + k) for a, b, size in matcher.get_matching_blocks() for k in range(size)]


def apply(page: str, delta: Delta) -> str:
    """The page after ``delta``; raises :class:`DeltaError` (with every reason) if Δ does not fit it."""
    lines = page.split("\n")
    keys = line_keys(lines)
    known = set(keys)
    problems: list[str] = []
    removed = set(delta.removed)
    changed = dict(delta.changed)
    inserted = dict(delta.inserted)
    for key, count in Counter(delta.removed).items():
        if count > 1:
            problems.append(f"{key} is removed {count} times")
    for key, count in Counter(k for k, _ in delta.changed).items():
        if count > 1:
            problems.append(f"{key} is replaced {count} times")
    for key, count in Counter(k for k, _ in delta.inserted).items():
        if count > 1:
            problems.append(f"two insertions after {key}: write one block")
    for key in [*delta.removed, *changed]:
        if key not in known:
            problems.append(f"the page has no line {key}")
    for key in removed & set(changed):
        problems.append(f"{key} is both removed and replaced")
    for key, block in delta.inserted:
        if key != TOP and key not in known:
            problems.append(f"the page has no line {key} to insert after")
        elif key in removed:
            problems.append(f"insertion after {key}, which is removed")
        if not block:
            problems.append(f"an empty insertion after {key}")
    for sign, key, block in delta.ops:
        if sign == "~" and len(block) != 1:
            problems.append(f"~ {key} takes one line, got {len(block)}")
        if sign == "-" and block:
            problems.append(f"- {key} takes no lines")
        if any("\n" in line for line in block):
            problems.append(f"a line for {key} spans several lines")
    if problems:
        raise DeltaError("the edit does not fit the page: " + "; ".join(dict.fromkeys(problems)))
    out = list(inserted.get(TOP, ()))
    for key, line in zip(keys, lines, strict=True):
        if key not in removed:
            out.append(changed.get(key, line))
        out.extend(inserted.get(key, ()))
    return "\n".join(out)


def format_delta(delta: Delta) -> str:
    """Δ as the world model writes it (the canonical text: ``parse_delta`` reads it back equal)."""
    reward = f"{delta.reward:.12g}" if math.isfinite(delta.reward) else "0"
    out = []
    if delta.reasoning:
        out.append(f"think: {' '.join(delta.reasoning.split())}")
    out += [f"reward: {reward}", f"done: {'yes' if delta.done else 'no'}"]
    if delta.error:
        out.append(f"error: {' '.join(delta.error.split())}")
    for sign, key, lines in delta.ops:
        out += [f"{sign} {key}", *(f"| {line}" for line in lines)]
    return "\n".join(out)


def parse_delta(text: str) -> Delta:
    """Read Δ's text (see the module docstring); raises :class:`DeltaError` naming the first bad line."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    headers: dict[str, str] = {}
    ops: list[Op] = []
    op: tuple[str, str] | None = None
    block: list[str] = []

    def close(number: int) -> None:
        nonlocal op, block
        if op is None:
            return
        sign, key = op
        if sign == "~":
            if len(block) != 1:
                raise DeltaError(f"line {number}: `~ {key}` takes exactly one `| ` line, got {len(block)}")
            ops.append(("~", key, (block[0],)))
        elif sign == "+":
            if not block:
                raise DeltaError(f"line {number}: `+ {key}` is followed by no `| ` line")
            ops.append(("+", key, tuple(block)))
        op, block = None, []

    for number, line in enumerate(lines, 1):
        if line.startswith("|"):
            if op is None or op[0] == "-":
                raise DeltaError(f"line {number}: a `| ` line belongs after `~ KEY` or `+ KEY`")
            if line != "|" and not line.startswith("| "):
                raise DeltaError(f"line {number}: a content line starts with `| ` (bar, space)")
            block.append(line[2:])
            continue
        close(number)
        header, sep, value = line.partition(": ")
        if sep and header in ("think", "reward", "done", "error") and not ops:
            if header in headers:
                raise DeltaError(f"line {number}: `{header}:` given twice")
            headers[header] = value
            continue
        match = _OP.match(line)
        if not match:
            raise DeltaError(f"line {number}: expected `reward:`, `done:`, `error:`, `- KEY`, `~ KEY`, `+ KEY` "
                             f"or `| line`, got {line[:80]!r}")
        sign, key = match.groups()
        if not (_KEY.fullmatch(key) or (sign == "+" and key == TOP)):
            raise DeltaError(f"line {number}: {key!r} is not a line key ([12], [12]+1, [^]+1, URL)")
        if sign == "-":
            ops.append(("-", key, ()))
        else:
            op = (sign, key)
    close(len(lines) + 1)
    for required in ("reward", "done"):
        if required not in headers:
            raise DeltaError(f"Δ has no `{required}:` line")
    try:
        reward = float(headers["reward"])
    except ValueError:
        raise DeltaError(f"reward is not a number: {headers['reward'][:40]!r}") from None
    if not math.isfinite(reward):
        raise DeltaError(f"reward is not finite: {headers['reward'][:40]!r}")
    if headers["done"] not in ("yes", "no"):
        raise DeltaError(f"done is yes or no, got {headers['done'][:40]!r}")
    return Delta(tuple(ops), reward=reward, done=headers["done"] == "yes",
                 error=headers.get("error") or None, reasoning=headers.get("think") or None)


def page_lines_overlap(predicted: str, real: str) -> tuple[int, int, int]:
    """(lines in both, predicted lines, real lines), counting repeated lines as often as they occur: the
    element-level precision and recall of a predicted page."""
    a, b = Counter(predicted.split("\n")), Counter(real.split("\n"))
    both = sum(min(n, b.get(line, 0)) for line, n in a.items())
    return both, sum(a.values()), sum(b.values())
