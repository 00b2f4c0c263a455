"""Unified diffs as the edits a person would make with an editor: one `str_replace` per hunk.

The expert applies a task's reference patch through the same editor tool the agent has, so its
trajectory is one a model can imitate. A hunk's old text is its context plus removed lines, the new text
its context plus added lines; a hunk that would match twice is widened with more of the file until it is
unique (the editor refuses ambiguous replacements, as SWE-agent's and OpenHands' do).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class Edit:
    path: str
    old: str
    new: str
    #: a new file (old is empty) or a deleted file (new is empty)
    kind: str = "replace"


def touched_paths(diff: str) -> list[str]:
    paths = []
    for line in diff.splitlines():
        if line.startswith("+++ ") or line.startswith("--- "):
            name = line[4:].split("\t")[0].strip()
            if name != "/dev/null":
                name = name[2:] if name.startswith(("a/", "b/")) else name
                if name not in paths:
                    paths.append(name)
    return paths


def edits_from_diff(diff: str) -> list[Edit]:
    """The hunks of a unified diff (git's format) as text replacements, in file order."""
    edits: list[Edit] = []
    path = ""
    new_file = deleted = False
    old_lines: list[str] = []
    new_lines: list[str] = []
    in_hunk = False

    def flush() -> None:
        nonlocal old_lines, new_lines, in_hunk
        if in_hunk:
            kind = "create" if new_file else "delete" if deleted else "replace"
            edits.append(Edit(path, "".join(old_lines), "".join(new_lines), kind))
        old_lines, new_lines, in_hunk = [], [], False

    old_path = ""
    for line in diff.splitlines(keepends=True):
        if line.startswith("diff --git "):
            flush()
            new_file = deleted = False
            continue
        if not in_hunk or not line.startswith((" ", "-", "+", "\\", "\n")) or line.startswith(("--- ", "+++ ")):
            if line.startswith("new file mode"):
                new_file = True
            elif line.startswith("deleted file mode"):
                deleted = True
            elif line.startswith("--- "):
                flush()
                name = line[4:].split("\t")[0].strip()
                old_path = name[2:] if name.startswith("a/") else name
            elif line.startswith("+++ "):
                name = line[4:].split("\t")[0].strip()
                path = old_path if name == "/dev/null" else name[2:] if name.startswith("b/") else name
            elif HUNK.match(line):
                flush()
                in_hunk = True
            continue
        if HUNK.match(line):
            flush()
            in_hunk = True
            continue
        if line.startswith("\\"):  # "\ No newline at end of file"
            for lines in (old_lines, new_lines):
                if lines and lines[-1].endswith("\n"):
                    lines[-1] = lines[-1][:-1]
            continue
        tag, text = line[:1], line[1:]
        if tag == "\n":
            old_lines.append("\n")
            new_lines.append("\n")
        elif tag == " ":
            old_lines.append(text)
            new_lines.append(text)
        elif tag == "-":
            old_lines.append(text)
        elif tag == "+":
            new_lines.append(text)
    flush()
    return edits


def unique_old_text(content: str, old: str, new: str) -> tuple[str, str] | None:
    """Widen a replacement until its old text occurs exactly once in `content` (None if impossible)."""
    if content.count(old) == 1:
        return old, new
    start = content.find(old)
    if start < 0:
        return None
    lines_before = content[:start].splitlines(keepends=True)
    after = content[start + len(old):].splitlines(keepends=True)
    for width in range(1, max(len(lines_before), len(after)) + 1):
        prefix = "".join(lines_before[-width:])
        suffix = "".join(after[:width])
        candidate = prefix + old + suffix
        if content.count(candidate) == 1:
            return candidate, prefix + new + suffix
    return None
