"""The file editor tool of SWE-agent and OpenHands (`str_replace_editor`), over a sandbox.

Commands: `view` (a file with line numbers, optionally a line range; a directory two levels deep),
`create`, `str_replace` (the old text must occur exactly once), `insert` (after a line number) and
`undo_edit` (per file, any depth). Every read and write goes through the sandbox's file API, which runs
inside the sandbox and keeps paths inside the workspace, so a symlink the agent planted cannot make the
editor touch a host file (reliability A13). Errors are messages for the agent, never exceptions.
"""

from __future__ import annotations

import posixpath
from typing import Any

from agentenv.sandboxes import Sandbox, SandboxRequestError

MAX_FILE_BYTES = 1 << 20
MAX_VIEW_LINES = 400
SNIPPET_CONTEXT = 4

EDITOR_TOOL = {
    "type": "function",
    "function": {
        "name": "str_replace_editor",
        "description": (
            "View, create and edit files. `view` shows a file with line numbers (or lists a directory); "
            "`create` writes a new file; `str_replace` replaces `old_str`, which must occur exactly once, by "
            "`new_str`; `insert` adds `new_str` after line `insert_line`; `undo_edit` reverts the last edit."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"]},
                "path": {"type": "string"},
                "file_text": {"type": "string"},
                "old_str": {"type": "string"},
                "new_str": {"type": "string"},
                "insert_line": {"type": "integer"},
                "view_range": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["command", "path"],
        },
    },
}


class EditorError(ValueError):
    """A command the editor cannot carry out; its message goes back to the agent."""


def numbered(text: str, start: int = 1) -> str:
    return "\n".join(f"{i:6d}\t{line}" for i, line in enumerate(text.split("\n"), start))


class Editor:
    def __init__(self, sandbox: Sandbox, root: str) -> None:
        self.sandbox, self.root = sandbox, root
        self.history: dict[str, list[str | None]] = {}

    def resolve(self, path: str) -> str:
        if not isinstance(path, str) or not path.strip():
            raise EditorError("path is required")
        full = posixpath.normpath(path if path.startswith("/") else posixpath.join(self.root, path))
        if not (full == self.root or full.startswith(self.root + "/")):
            raise EditorError(f"{path} is outside the repository ({self.root})")
        return full

    def read(self, path: str) -> str:
        try:
            data = self.sandbox.read_file(path, max_bytes=MAX_FILE_BYTES + 1)
        except SandboxRequestError as exc:
            raise EditorError(f"cannot read {path}: {exc}") from exc
        if len(data) > MAX_FILE_BYTES:
            raise EditorError(f"{path} is larger than {MAX_FILE_BYTES} bytes; use bash to inspect it")
        if b"\x00" in data:
            raise EditorError(f"{path} is a binary file")
        return data.decode("utf-8", "replace")

    def exists(self, path: str) -> bool:
        try:
            self.sandbox.read_file(path, max_bytes=0)
            return True
        except SandboxRequestError:
            return False

    def write(self, path: str, text: str, previous: str | None) -> None:
        try:
            self.sandbox.write_file(path, text)
        except SandboxRequestError as exc:
            raise EditorError(f"cannot write {path}: {exc}") from exc
        self.history.setdefault(path, []).append(previous)

    def run(self, arguments: dict[str, Any]) -> str:
        """Carry out one command; the result (or the error) as text for the agent."""
        try:
            command = arguments.get("command")
            path = self.resolve(arguments.get("path", ""))
            handler = getattr(self, f"cmd_{command}", None)
            if handler is None:
                raise EditorError(f"unknown command {command!r}; use view, create, str_replace, insert or undo_edit")
            return str(handler(path, arguments))
        except EditorError as exc:
            return f"Error: {exc}"

    def cmd_view(self, path: str, arguments: dict[str, Any]) -> str:
        try:
            entries = self.sandbox.list_dir(path)
        except SandboxRequestError:
            entries = None
        if entries is not None:
            lines = []
            for name, kind in entries:
                if name.startswith(".") or name == "__pycache__":
                    continue
                lines.append(f"{name}/" if kind == "dir" else name)
                if kind == "dir":
                    try:
                        sub = self.sandbox.list_dir(posixpath.join(path, name))
                    except SandboxRequestError:
                        continue
                    lines += [f"  {n}/" if k == "dir" else f"  {n}" for n, k in sub
                              if not n.startswith(".") and n != "__pycache__"]
            return f"{path}:\n" + "\n".join(lines)
        text = self.read(path)
        lines = text.split("\n")
        view_range = arguments.get("view_range")
        start, end = 1, len(lines)
        if view_range is not None:
            well_formed = isinstance(view_range, list) and len(view_range) == 2
            if not (well_formed and all(isinstance(v, int) for v in view_range)):
                raise EditorError("view_range must be [start, end] (1-based; end -1 for the last line)")
            start, end = view_range[0], len(lines) if view_range[1] == -1 else view_range[1]
            if not 1 <= start <= end <= len(lines):
                raise EditorError(f"view_range {view_range} is outside the file's {len(lines)} lines")
        note = ""
        if end - start + 1 > MAX_VIEW_LINES:
            end = start + MAX_VIEW_LINES - 1
            note = f"\n[... shown lines {start}-{end} of {len(lines)}; use view_range to see more ...]"
        return numbered("\n".join(lines[start - 1:end]), start) + note

    def cmd_create(self, path: str, arguments: dict[str, Any]) -> str:
        text = arguments.get("file_text")
        if not isinstance(text, str):
            raise EditorError("create needs file_text")
        if self.exists(path):
            raise EditorError(f"{path} already exists; use str_replace to change it")
        self.write(path, text, None)
        return f"File created: {path}"

    def cmd_str_replace(self, path: str, arguments: dict[str, Any]) -> str:
        old, new = arguments.get("old_str"), arguments.get("new_str", "")
        if not isinstance(old, str) or not old:
            raise EditorError("str_replace needs a non-empty old_str")
        if not isinstance(new, str):
            raise EditorError("new_str must be a string")
        text = self.read(path)
        count = text.count(old)
        if count == 0:
            raise EditorError(f"old_str was not found in {path}; it must match the file exactly, whitespace included")
        if count > 1:
            lines = [i + 1 for i, _ in enumerate(text.split("\n")) if old.split("\n")[0] in _]
            raise EditorError(
                f"old_str occurs {count} times in {path} (lines {lines[:10]}); add context to make it unique"
            )
        updated = text.replace(old, new, 1)
        self.write(path, updated, text)
        first = text[: text.index(old)].count("\n")
        return f"Edited {path}. The changed region:\n" + self.snippet(updated, first, new.count("\n") + 1)

    def cmd_insert(self, path: str, arguments: dict[str, Any]) -> str:
        line, new = arguments.get("insert_line"), arguments.get("new_str")
        if not isinstance(line, int) or isinstance(line, bool):
            raise EditorError("insert needs insert_line (an integer)")
        if not isinstance(new, str):
            raise EditorError("insert needs new_str")
        text = self.read(path)
        lines = text.split("\n")
        if not 0 <= line <= len(lines):
            raise EditorError(f"insert_line {line} is outside 0..{len(lines)}")
        updated = "\n".join([*lines[:line], *new.split("\n"), *lines[line:]])
        self.write(path, updated, text)
        return f"Inserted into {path}:\n" + self.snippet(updated, line, new.count("\n") + 1)

    def cmd_undo_edit(self, path: str, arguments: dict[str, Any]) -> str:
        stack = self.history.get(path)
        if not stack:
            raise EditorError(f"no edit of {path} to undo")
        previous = stack.pop()
        if previous is None:
            result = self.sandbox.exec(["rm", "-f", "--", path])
            if not result.ok:
                raise EditorError(f"cannot remove {path}: {result.stderr.strip()}")
            return f"Undid the creation of {path}"
        try:
            self.sandbox.write_file(path, previous)
        except SandboxRequestError as exc:
            raise EditorError(f"cannot write {path}: {exc}") from exc
        return f"Undid the last edit of {path}"

    @staticmethod
    def snippet(text: str, first_line: int, length: int) -> str:
        lines = text.split("\n")
        start = max(0, first_line - SNIPPET_CONTEXT)
        end = min(len(lines), first_line + length + SNIPPET_CONTEXT)
        return numbered("\n".join(lines[start:end]), start + 1)
