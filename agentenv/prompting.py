"""How an episode's observations become the conversation a policy sees.

The prompt holds the env's instructions and task (its first observation, always kept), the tools or the
admissible actions, and a window of past turns. While the window has not slid, each turn's messages
extend the previous turn's, and :meth:`Conversation.request` hands the policy the previous tokens as a
:class:`~agentenv.policy.Continuation` so the prompt is extended, never re-tokenized.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agentenv.messages import Message, Observation, append_text
from agentenv.policy import Continuation, PolicyOutput


@dataclass
class PromptConfig:
    #: past turns kept in full (None: all of them). When it slides, the prompt is rendered afresh.
    window: int | None = None
    #: append the admissible actions to each observation
    show_admissible: bool = True
    #: describe the tools' JSON schemas in the system message
    tools_in_system: bool = True
    #: extra instructions appended to the system message
    instructions: str = ""
    #: map the env's ``tool`` messages to this role (some chat templates know no ``tool`` role)
    tool_role: str = "tool"

    def __post_init__(self) -> None:
        if self.window is not None and self.window < 0:
            raise ValueError(f"window must be >= 0 or None, got {self.window}")


def new_prompt_tokens(prompt_ids: list[int], continuation: Continuation | None) -> tuple[list[int], int]:
    """A turn's prompt as the trajectory stores it: the tokens new at this turn and how many tokens of the
    previous context come before them (0 when the prompt was rendered afresh)."""
    if continuation is not None and prompt_ids:
        prefix = continuation.prompt_ids + continuation.completion_ids
        if prompt_ids[: len(prefix)] == prefix:
            return prompt_ids[len(prefix):], len(prefix)
    return prompt_ids, 0


class Conversation:
    """The messages of one episode, and the tokens of its last turn for prefix-stable rendering."""

    def __init__(self, config: PromptConfig | None = None):
        self.config = config or PromptConfig()
        self.head: list[Message] = []
        self.history: list[list[Message]] = []  # per past turn: [assistant, *observation messages]
        self._last: tuple[list[Message], PolicyOutput] | None = None

    def start(self, obs: Observation) -> None:
        msgs = self.format_observation(obs)
        extra = []
        if self.config.tools_in_system and obs.get("tools"):
            extra.append("You can call these tools (JSON schemas):\n" + "\n".join(
                json.dumps(t, ensure_ascii=False) for t in obs["tools"]))
        if self.config.instructions:
            extra.append(self.config.instructions)
        if extra:
            if msgs and msgs[0]["role"] == "system":
                msgs[0] = {"role": "system", "content": append_text(msgs[0]["content"], "\n\n".join(extra))}
            else:
                msgs.insert(0, {"role": "system", "content": "\n\n".join(extra)})
        self.head = msgs
        self.history = []
        self._last = None

    def format_observation(self, obs: Observation) -> list[Message]:
        msgs: list[Message] = [
            {"role": self.config.tool_role if m["role"] == "tool" else m["role"], "content": m["content"]}
            for m in obs.get("messages", [])
        ]
        adm = obs.get("admissible")
        if self.config.show_admissible and adm:
            listing = "Admissible actions:\n" + "\n".join(f"- {a}" for a in adm)
            if msgs and msgs[-1]["role"] != "system":
                msgs[-1] = {"role": msgs[-1]["role"], "content": append_text(msgs[-1]["content"], listing)}
            else:
                msgs.append({"role": "user", "content": listing})
        return msgs

    def messages(self) -> list[Message]:
        window = self.config.window
        kept = self.history if window is None else self.history[len(self.history) - window:] if window else []
        return [*self.head, *(m for turn in kept for m in turn)]

    def continuation(self, messages: list[Message]) -> Continuation | None:
        """The previous turn's tokens if ``messages`` extends that turn's messages plus its action."""
        if self._last is None:
            return None
        prev_messages, out = self._last
        if out.prompt_ids is None or out.completion_ids is None:
            return None
        n = len(prev_messages) + 1
        if len(messages) <= n or messages[: len(prev_messages)] != prev_messages:
            return None
        if messages[n - 1] != {"role": "assistant", "content": out.text}:
            return None
        return Continuation(list(out.prompt_ids), list(out.completion_ids), n)

    def record(self, messages: list[Message], output: PolicyOutput, action_text: str, obs: Observation) -> None:
        """Add a finished turn: the action taken (``action_text``) and the env's answer ``obs``."""
        self.history.append([{"role": "assistant", "content": action_text}, *self.format_observation(obs)])
        # tokens can be reused only when the action taken is the text the policy sampled
        self._last = (messages, output) if action_text == output.text else None
