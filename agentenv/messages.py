"""Chat messages and the observation dict every agentenv environment returns.

An observation is a plain dict so that it crosses process and HTTP boundaries unchanged:

    {"messages": [{"role": "user", "content": "..."}],     # what the env adds this turn
     "tools": [{"type": "function", "function": {...}}],   # optional: JSON schemas of callable tools
     "admissible": ["go north", ...]}                       # optional: the actions that are valid now
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Message(TypedDict):
    """One chat message. ``role`` is ``system``, ``user``, ``assistant`` or ``tool``."""

    role: str
    content: str


class Observation(TypedDict):
    messages: list[Message]
    tools: NotRequired[list[dict[str, Any]]]
    admissible: NotRequired[list[str]]


ROLES = ("system", "user", "assistant", "tool")


def message(role: str, content: str) -> Message:
    if role not in ROLES:
        raise ValueError(f"unknown message role {role!r}; expected one of {', '.join(ROLES)}")
    return {"role": role, "content": content}


def observation(
    *messages: Message | str,
    tools: list[dict[str, Any]] | None = None,
    admissible: list[str] | None = None,
) -> Observation:
    """Build an observation; bare strings become ``user`` messages."""
    msgs: list[Message] = [message("user", m) if isinstance(m, str) else m for m in messages]
    obs: Observation = {"messages": msgs}
    if tools is not None:
        obs["tools"] = tools
    if admissible is not None:
        obs["admissible"] = list(admissible)
    return obs


def observation_problems(obs: Any) -> list[str]:
    """Every way ``obs`` breaks the observation contract (empty when it is well-formed)."""
    if not isinstance(obs, dict):
        return [f"observation must be a dict, got {type(obs).__name__}"]
    problems = []
    unknown = set(obs) - {"messages", "tools", "admissible"}
    if unknown:
        problems.append(f"unknown observation keys {sorted(unknown)}")
    msgs = obs.get("messages")
    if not isinstance(msgs, list):
        problems.append("observation['messages'] must be a list of messages")
    else:
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
                problems.append(f"messages[{i}] must be {{'role': one of {ROLES}, 'content': str}}, got {m!r:.80}")
    if "tools" in obs:
        tools = obs["tools"]
        if not isinstance(tools, list) or not all(_tool_name(t) for t in tools):
            problems.append("observation['tools'] must be a list of JSON schemas with a function name")
    if "admissible" in obs:
        adm = obs["admissible"]
        if not isinstance(adm, list) or not all(isinstance(a, str) for a in adm):
            problems.append("observation['admissible'] must be a list of strings")
    return problems


def _tool_name(tool: Any) -> str | None:
    if not isinstance(tool, dict):
        return None
    fn = tool.get("function", tool)
    name = fn.get("name") if isinstance(fn, dict) else None
    return name if isinstance(name, str) and name else None


def tool_name(tool: dict[str, Any]) -> str:
    """The function name of an OpenAI-style tool schema (``{"type": "function", "function": {...}}``)."""
    name = _tool_name(tool)
    if name is None:
        raise ValueError(f"tool schema has no function name: {tool!r:.120}")
    return name


def tool_parameters(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function", tool)
    params = fn.get("parameters", {}) if isinstance(fn, dict) else {}
    return params if isinstance(params, dict) else {}
