"""Prefix-stable prompt rendering with a tokenizer's own chat template.

Turn k's prompt is rendered as turn k-1's prompt ids + its sampled completion ids + the tokens of what
the chat template puts after them (the end of the assistant message and the new messages). History is
never re-tokenized, so the prompt a server sees extends the previous one (its prefix cache hits), and the
trainer sees exactly the tokens that were sampled. Templates that rewrite history (dropping past
``<think>`` blocks, for example) cannot break this, because history is not re-rendered.
"""

from __future__ import annotations

from typing import Any, Protocol

from agentenv.messages import Message
from agentenv.policy import Continuation

_PROBE = "\x00agentenv-probe\x00"


class ChatTokenizer(Protocol):
    eos_token_id: Any

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...

    def encode(self, text: str, **kwargs: Any) -> list[int]: ...

    def decode(self, ids: Any, **kwargs: Any) -> str: ...


class ChatRenderer:
    """Renders conversations to token ids, extending :class:`Continuation` tokens when given."""

    def __init__(self, tokenizer: ChatTokenizer):
        self.tokenizer = tokenizer
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
        out = self.tokenizer.apply_chat_template(list(messages), **kwargs)
        return out if isinstance(out, str) else str(out)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def render(self, messages: list[Message], continuation: Continuation | None = None,
               tools: list[dict[str, Any]] | None = None) -> list[int]:
        """Prompt ids for ``messages`` with the generation prompt; prefix-stable given a continuation."""
        if continuation is None or continuation.n_messages > len(messages):
            return self.encode(self.text(messages, tools=tools))
        new = messages[continuation.n_messages:]
        suffix = self._close_after(continuation.completion_ids) + self._delta(new)
        return [*continuation.prompt_ids, *continuation.completion_ids, *self.encode(suffix)]

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
