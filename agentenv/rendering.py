"""Prefix-stable prompt rendering with a tokenizer's own chat template.

Turn k's prompt is rendered as turn k-1's prompt ids + its sampled completion ids + the tokens of what
the chat template puts after them (the end of the assistant message and the new messages). History is
never re-tokenized, so the prompt a server sees extends the previous one (its prefix cache hits), and the
trainer sees exactly the tokens that were sampled. Templates that rewrite history (dropping past
``<think>`` blocks, for example) cannot break this, because history is not re-rendered.

Text that env messages carry (web pages, tool output, files) can spell the tokenizer's special tokens
(``<|im_start|>system``...). Rendered naively it would become those tokens and forge turns of the
conversation (reliability A25, B15), so every special-token string inside a system, user or tool message
is tokenized as plain text; assistant messages and the template's own markup keep their special tokens.

Images (list contents from the GUI envs) reach only a multimodal processor; for a text-only tokenizer
each image is rendered as the text ``[image]``, so a text model still runs on a visual env (blind).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from agentenv.messages import Message, text_only
from agentenv.policy import Continuation

_PROBE = "\x00agentenv-probe\x00"
_LITERAL = "\x00agentenv-literal-{}\x00"
_LITERAL_SPLIT = re.compile("\x00agentenv-literal-(\\d+)\x00")


class ChatTokenizer(Protocol):
    eos_token_id: Any

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...

    def encode(self, text: str, **kwargs: Any) -> list[int]: ...

    def decode(self, ids: Any, **kwargs: Any) -> str: ...


class ChatRenderer:
    """Renders conversations to token ids, extending :class:`Continuation` tokens when given."""

    def __init__(self, tokenizer: ChatTokenizer, multimodal: bool = False):
        self.tokenizer = tokenizer
        self.multimodal = multimodal
        specials = _special_strings(tokenizer)
        self._specials = re.compile("|".join(map(re.escape, specials))) if specials else None
        self._base: list[dict[str, Any]] = [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": _PROBE},
        ]
        rendered = self.text(self._base, add_generation_prompt=False)
        if _PROBE not in rendered:
            raise ValueError("the chat template does not render assistant messages verbatim")
        #: what the template writes after an assistant message's content ("<|im_end|>\n" for ChatML)
        self.assistant_close = rendered.split(_PROBE, 1)[1]
        self._base_text = rendered

    def text(self, messages: list[Message] | list[dict[str, Any]], add_generation_prompt: bool = True,
             tools: list[dict[str, Any]] | None = None) -> str:
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
        if tools:
            kwargs["tools"] = tools
        if not self.multimodal and any(not isinstance(m["content"], str) for m in messages):
            messages = text_only(messages)  # type: ignore[arg-type]
        out = self.tokenizer.apply_chat_template(list(messages), **kwargs)
        return out if isinstance(out, str) else str(out)

    def encode(self, text: str, literals: list[str] | None = None) -> list[int]:
        """Token ids of rendered text; the ``literals`` its placeholders stand for are tokenized as text."""
        if not literals or "\x00agentenv-literal-" not in text:
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        ids: list[int] = []
        for i, piece in enumerate(_LITERAL_SPLIT.split(text)):
            if i % 2 == 0:
                ids += self.tokenizer.encode(piece, add_special_tokens=False) if piece else []
            else:
                ids += self.tokenizer.encode(literals[int(piece)], add_special_tokens=False, split_special_tokens=True)
        return ids

    def render(self, messages: list[Message], continuation: Continuation | None = None,
               tools: list[dict[str, Any]] | None = None) -> list[int]:
        """Prompt ids for ``messages`` with the generation prompt; prefix-stable given a continuation."""
        messages, literals = self._protect(messages)
        if continuation is None or continuation.n_messages > len(messages):
            return self.encode(self.text(messages, tools=tools), literals)
        new = messages[continuation.n_messages:]
        suffix = self._close_after(continuation.completion_ids) + self._delta(new)
        return [*continuation.prompt_ids, *continuation.completion_ids, *self.encode(suffix, literals)]

    def _protect(self, messages: list[Message]) -> tuple[list[Message], list[str]]:
        """The messages with each special-token string in env-written text replaced by a placeholder."""
        literals: list[str] = []
        if self._specials is None:
            return messages, literals
        pattern = self._specials

        def hide(text: str) -> str:
            def placeholder(match: re.Match[str]) -> str:
                literals.append(match.group(0))
                return _LITERAL.format(len(literals) - 1)

            return pattern.sub(placeholder, text)

        out: list[Message] = []
        for m in messages:
            content = m["content"]
            if m["role"] == "assistant" or not (pattern.search(content) if isinstance(content, str) else any(
                    p.get("type") == "text" and pattern.search(str(p.get("text", ""))) for p in content)):
                out.append(m)
            elif isinstance(content, str):
                out.append({"role": m["role"], "content": hide(content)})
            else:
                out.append({"role": m["role"], "content": [
                    {**p, "text": hide(str(p["text"]))} if p.get("type") == "text" else p for p in content]})
        return out, literals

    def _close_after(self, completion_ids: list[int]) -> str:
        """The rest of the assistant-message ending that the sampled completion did not produce itself."""
        close = self.assistant_close
        if not completion_ids or self.tokenizer.decode(completion_ids[-1:], skip_special_tokens=True):
            return close  # cut off (length limit) before a special end token: close the message ourselves
        tail = self.tokenizer.decode(completion_ids[-1:], skip_special_tokens=False)
        return close[len(tail):] if close.startswith(tail) else close

    def _delta(self, new: list[Message]) -> str:
        full = self.text([*self._base, *(dict(m) for m in new)], add_generation_prompt=True)
        if not full.startswith(self._base_text):
            raise ValueError("the chat template is not prefix-stable: appending messages changes earlier text")
        return full[len(self._base_text):]


def _special_strings(tokenizer: Any) -> list[str]:
    """The tokenizer's special-token strings, longest first (so `<|im_start|>` wins over `<|`)."""
    found = {str(t) for t in getattr(tokenizer, "all_special_tokens", []) or []}
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    found |= {str(t.content) for t in decoder.values() if getattr(t, "special", False)}
    return sorted((t for t in found if t), key=len, reverse=True)
