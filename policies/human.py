"""A person at the terminal acts: see the latest observation, type the action."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from agentenv.messages import content_text, tool_name
from agentenv.policy import PolicyError, PolicyOutput, PolicyRequest


class HumanPolicy:
    """Shows the messages new since the last action and the admissible actions (numbered), then reads one
    line in a worker thread so the event loop keeps running. A number picks that admissible action."""

    wants_expert = False

    def __init__(self, input_fn: Callable[[str], str] = input, print_fn: Callable[..., Any] = print,
                 name: str = "human"):
        self.name = name
        self.version = 0
        self.input_fn = input_fn
        self.print_fn = print_fn
        self._lock = asyncio.Lock()  # one prompt at a time when several episodes run concurrently

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        outputs = []
        async with self._lock:
            for request in requests:
                self.show(request)
                try:
                    line = await asyncio.to_thread(self.input_fn, "> ")
                except EOFError:
                    raise PolicyError("no more input (end of file) while waiting for the human's action") from None
                outputs.append(PolicyOutput(text=self.resolve(line, request.admissible)))
        return outputs

    async def aclose(self) -> None:
        pass

    def show(self, request: PolicyRequest) -> None:
        msgs = request.messages
        last_action = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=-1)
        header = f"--- {request.trajectory_id or 'episode'}, turn {request.turn} ---"
        self.print_fn(header)
        for m in msgs[last_action + 1:]:
            self.print_fn(f"[{m['role']}] {content_text(m['content'])}")
        if request.admissible:
            self.print_fn("Admissible actions (type one, or its number):")
            for i, action in enumerate(request.admissible, 1):
                self.print_fn(f"  {i}. {action}")
        if request.tools:
            names = ", ".join(tool_name(t) for t in request.tools)
            self.print_fn(f'Tools: {names}. Call one with <tool_call>{{"name": ..., "arguments": {{...}}}}</tool_call>')

    @staticmethod
    def resolve(line: str, admissible: list[str] | None) -> str:
        text = line.rstrip("\r\n")
        if admissible and text.strip().isdigit() and 1 <= int(text.strip()) <= len(admissible):
            return admissible[int(text.strip()) - 1]
        return text
