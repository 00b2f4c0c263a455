"""Chat messages and the observation dict every agentenv environment returns.

An observation is a plain dict so that it crosses process and HTTP boundaries unchanged:

    {"messages": [{"role": "user", "content": "..."}],     # what the env adds this turn
     "tools": [{"type": "function", "function": {...}}],   # optional: JSON schemas of callable tools
     "admissible": ["go north", ...]}                       # optional: the actions that are valid now
"""

from __future__ import annotations

import base64
from typing import Any, NotRequired, TypedDict

#: A message's content is a string, or a list of parts in the OpenAI format, for images:
#: ``[{"type": "text", "text": "..."}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}]``
Content = str | list[dict[str, Any]]
IMAGE_PLACEHOLDER = "[image]"


class Message(TypedDict):
    """One chat message. ``role`` is ``system``, ``user``, ``assistant`` or ``tool``."""

    role: str
    content: Content


class Observation(TypedDict):
    messages: list[Message]
    tools: NotRequired[list[dict[str, Any]]]
    admissible: NotRequired[list[str]]


ROLES = ("system", "user", "assistant", "tool")


def message(role: str, content: Content) -> Message:
    if role not in ROLES:
        raise ValueError(f"unknown message role {role!r}; expected one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        problem = content_problem(content)
        if problem:
            raise ValueError(problem)
    return {"role": role, "content": content}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(png: bytes, mime: str = "image/png") -> dict[str, Any]:
    """An image as the OpenAI chat format carries it (a base64 data URL), so VLM servers read it as is."""
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(png).decode()}"}}


def image_bytes(part: dict[str, Any]) -> bytes:
    """The bytes of an ``image_part``; ValueError for anything that is not an inline base64 image."""
    url = str((part.get("image_url") or {}).get("url", ""))
    head, sep, data = url.partition(",")
    if not (sep and head.startswith("data:image/") and head.endswith(";base64")):
        raise ValueError(f"not an inline base64 image: {url[:60]!r}")
    return base64.b64decode(data, validate=True)


def content_text(content: Content, placeholder: str = IMAGE_PLACEHOLDER) -> str:
    """The text of a message's content, each image replaced by ``placeholder`` (for text-only readers)."""
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) if p.get("type") == "text" else placeholder for p in content)


def append_text(content: Content, text: str, sep: str = "\n\n") -> Content:
    """``content`` with ``text`` added at the end, keeping its images."""
    if isinstance(content, str):
        return content + sep + text if content else text
    return [*content, text_part(text)]


def has_images(messages: list[Message]) -> bool:
    return any(not isinstance(m["content"], str) and any(p.get("type") == "image_url" for p in m["content"])
               for m in messages)


def text_only(messages: list[Message], placeholder: str = IMAGE_PLACEHOLDER) -> list[Message]:
    """The messages with every list content flattened to text (images become ``placeholder``)."""
    return [m if isinstance(m["content"], str)
            else {"role": m["role"], "content": content_text(m["content"], placeholder)} for m in messages]


def content_problem(content: Any) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return f"content must be a string or a non-empty list of parts, got {content!r:.80}"
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url" and isinstance(part.get("image_url"), dict) \
                and isinstance(part["image_url"].get("url"), str):
            continue
        return f"content part {i} must be {{'type': 'text', 'text': str}} or an image_url part, got {part!r:.80}"
    return None


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


def cap_text(text: str, max_chars: int) -> str:
    """Head and tail of a long text for a model's context, with the marker in between."""
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    dropped = len(text) - 2 * half
    return text[:half] + f"\n[... truncated {dropped} characters ...]\n" + text[len(text) - half :]


def cap_observation(obs: Observation, max_chars: int | None) -> Observation:
    """``obs`` with each message's text cut to ``max_chars`` (head and tail kept, the cut marked), so one
    huge page or log cannot blow up a prompt, a trajectory row or the collector's memory. Returns ``obs``
    itself when nothing is over the cap."""
    if max_chars is None or not isinstance(obs, dict):
        return obs
    messages = obs.get("messages")
    if not isinstance(messages, list):
        return obs

    def capped(content: Any) -> Any:
        if isinstance(content, str):
            return cap_text(content, max_chars)
        if isinstance(content, list):
            return [{**part, "text": cap_text(part["text"], max_chars)}
                    if isinstance(part, dict) and isinstance(part.get("text"), str) else part for part in content]
        return content

    new = [{**m, "content": capped(m.get("content"))} if isinstance(m, dict) else m for m in messages]
    if all(a is b or a == b for a, b in zip(new, messages, strict=True)):
        return obs
    capped_obs: Any = {**obs, "messages": new}
    return capped_obs


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
            if not isinstance(m, dict) or m.get("role") not in ROLES or "content" not in m:
                problems.append(f"messages[{i}] must be {{'role': one of {ROLES}, 'content': str}}, got {m!r:.80}")
            elif (problem := content_problem(m["content"])) is not None:
                problems.append(f"messages[{i}]: {problem}")
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
