"""Parsers for the two action styles the field uses.

* Tool calls, OpenAI style: ``{"name": ..., "arguments": {...}}`` as bare JSON, a JSON list, inside
  ``<tool_call>...</tool_call>`` tags (Hermes/Qwen), or in a fenced ```json block; several per turn.
* ReAct text: ``Thought: ...`` then ``Action: <command>`` (the last ``Action:`` line wins).

A parser never raises on model output: it raises :class:`ActionParseError`, whose message is written for
the model (what was wrong and the expected format), and the env turns that into an observation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agentenv.messages import tool_name, tool_parameters

MAX_JSON_DEPTH = 32


class ActionParseError(ValueError):
    """The action text could not be parsed; the message explains the expected format to the model."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments, "id": self.id}


@dataclass(frozen=True)
class ParsedAction:
    """What a parser made of the action text: tool calls, or a text command (ReAct / admissible)."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "tool_calls": [c.to_dict() for c in self.tool_calls]}


_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _reject_constant(name: str) -> Any:
    raise ActionParseError(f"{name} is not valid JSON; use a number")


def _depth(text: str) -> int:
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def loads_strict(text: str) -> Any:
    """``json.loads`` with the limits model output needs: bounded nesting, no NaN/Infinity, no huge ints."""
    if _depth(text) > MAX_JSON_DEPTH:
        raise ActionParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ActionParseError:
        raise
    except (ValueError, RecursionError) as e:
        raise ActionParseError(f"invalid JSON ({e})") from None


class ToolCallParser:
    """Parses OpenAI-style tool calls and checks them against the tools' JSON schemas."""

    def __init__(self, tools: list[dict[str, Any]], max_calls: int = 8):
        self.tools = {tool_name(t): tool_parameters(t) for t in tools}
        self.max_calls = max_calls

    @property
    def format_help(self) -> str:
        names = ", ".join(sorted(self.tools))
        return (
            'Call a tool by writing <tool_call>{"name": "TOOL", "arguments": {...}}</tool_call> '
            f"with TOOL one of: {names}."
        )

    def parse(self, text: str) -> ParsedAction:
        blobs = _TAGGED.findall(text) or _FENCED.findall(text)
        if not blobs:
            start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
            if start < 0:
                raise ActionParseError(f"no tool call found. {self.format_help}")
            blobs = [text[start:]]
        raw: list[Any] = []
        for blob in blobs:
            value = self._decode_blob(blob.strip())
            raw.extend(value if isinstance(value, list) else [value])
        if not raw:
            raise ActionParseError(f"empty tool call list. {self.format_help}")
        if len(raw) > self.max_calls:
            raise ActionParseError(f"{len(raw)} tool calls in one turn; at most {self.max_calls} are allowed")
        calls = tuple(self._to_call(c) for c in raw)
        return ParsedAction(text=text, tool_calls=calls)

    def _decode_blob(self, blob: str) -> Any:
        try:
            return loads_strict(blob)
        except ActionParseError as first:
            # A JSON value followed by prose ("{...} I will now wait") is common model output.
            try:
                value, end = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(blob)
                if _depth(blob[:end]) > MAX_JSON_DEPTH:  # the fallback must keep loads_strict's depth limit
                    raise ActionParseError("nested too deep")
                return value
            except (ValueError, RecursionError, ActionParseError):
                raise ActionParseError(f"{first}. {self.format_help}") from None

    def _to_call(self, raw: Any) -> ToolCall:
        if not isinstance(raw, dict):
            raise ActionParseError(f"a tool call must be a JSON object, got {type(raw).__name__}")
        if "function" in raw and isinstance(raw["function"], dict):
            raw = {**raw["function"], "id": raw.get("id")}
        name = raw.get("name")
        if not isinstance(name, str):
            raise ActionParseError(f'tool call without a "name". {self.format_help}')
        if name not in self.tools:
            raise ActionParseError(f"unknown tool {name!r}. {self.format_help}")
        args = raw.get("arguments", raw.get("parameters", {}))
        if isinstance(args, str):
            args = loads_strict(args) if args.strip() else {}
        if not isinstance(args, dict):
            raise ActionParseError(f'"arguments" of {name} must be a JSON object')
        check_arguments(name, args, self.tools[name])
        call_id = raw.get("id")
        return ToolCall(name=name, arguments=args, id=call_id if isinstance(call_id, str) else None)


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def check_arguments(name: str, args: dict[str, Any], schema: dict[str, Any]) -> None:
    """Check required keys, unknown keys, types, enums and numeric bounds of a tool's arguments."""
    props: dict[str, Any] = schema.get("properties", {}) or {}
    for key in schema.get("required", []) or []:
        if key not in args:
            raise ActionParseError(f"{name}: missing required argument {key!r}")
    if schema.get("additionalProperties") is False or props:
        unknown = sorted(set(args) - set(props))
        if unknown:
            raise ActionParseError(f"{name}: unknown argument(s) {unknown}; expected {sorted(props)}")
    for key, value in args.items():
        spec = props.get(key, {})
        want = spec.get("type")
        types = _JSON_TYPES.get(want) if isinstance(want, str) else None
        if types and (not isinstance(value, types) or (want in ("integer", "number") and isinstance(value, bool))):
            raise ActionParseError(f"{name}: argument {key!r} must be of type {want}, got {value!r:.40}")
        if "enum" in spec and value not in spec["enum"]:
            raise ActionParseError(f"{name}: argument {key!r} must be one of {spec['enum']}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in spec and value < spec["minimum"]:
                raise ActionParseError(f"{name}: argument {key!r} must be >= {spec['minimum']}")
            if "maximum" in spec and value > spec["maximum"]:
                raise ActionParseError(f"{name}: argument {key!r} must be <= {spec['maximum']}")


_ACTION_LINE = re.compile(r"^\s*\**Action\**\s*:\**\s*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)


class ReActParser:
    """Parses ReAct text: the command after the last ``Action:``.

    With ``admissible`` given, the command must match one of them (case and spacing are normalised);
    with ``bare_commands=True``, a reply that is just one line is taken as the command (ALFWorld style).
    With ``lenient=True``, a reply that fits no exact admissible action but mentions exactly one of them
    ("I must go east.") is taken as that action: small models rarely keep the format, and an env meant for
    them can trade format strictness for a learnable signal. A reply naming two actions stays invalid.
    """

    def __init__(self, bare_commands: bool = False, lenient: bool = False):
        self.bare_commands = bare_commands
        self.lenient = lenient

    format_help = "Think in a line starting with 'Thought:', then give your command in a line 'Action: <command>'."

    def parse(self, text: str, admissible: list[str] | None = None) -> ParsedAction:
        try:
            return self._parse(text, admissible)
        except ActionParseError:
            mentioned = mentioned_actions(text, admissible) if self.lenient and admissible else []
            if len(mentioned) != 1:
                raise
            return ParsedAction(text=text, command=mentioned[0])

    def _parse(self, text: str, admissible: list[str] | None) -> ParsedAction:
        found = _ACTION_LINE.findall(text)
        if found:
            command = found[-1]
        elif self.bare_commands and text.strip() and "\n" not in text.strip():
            command = text.strip()
        else:
            raise ActionParseError(f"no 'Action:' line found. {self.format_help}")
        command = command.strip().strip("`").strip()
        if not command:
            raise ActionParseError(f"the 'Action:' line is empty. {self.format_help}")
        if admissible is not None:
            command = match_admissible(command, admissible)
        return ParsedAction(text=text, command=command)


def normalise_command(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


def match_admissible(command: str, admissible: list[str]) -> str:
    """The admissible action that ``command`` names, or :class:`ActionParseError` listing a few."""
    table = {normalise_command(a): a for a in admissible}
    hit = table.get(normalise_command(command))
    if hit is None:
        shown = ", ".join(admissible[:12]) + (", ..." if len(admissible) > 12 else "")
        raise ActionParseError(f"{command[:80]!r} is not an admissible action. Choose one of: {shown}")
    return hit


def mentioned_actions(text: str, admissible: list[str]) -> list[str]:
    """The admissible actions that occur in ``text`` as whole words (case and spacing normalised)."""
    haystack = f" {' '.join(re.findall(r'[a-z0-9]+', text.lower()))} "
    hits = []
    for action in admissible:
        needle = " ".join(re.findall(r"[a-z0-9]+", action.lower()))
        if needle and f" {needle} " in haystack:
            hits.append(action)
    return hits
