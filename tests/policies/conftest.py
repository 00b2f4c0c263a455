"""Fixtures for the policy tests: one tiny random Llama with the real SmolLM2 tokenizer per session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def tiny_policy(tiny_model_dir: Path) -> Iterator[Any]:
    from agentenv.policies.embedded import TransformersPolicy

    policy = TransformersPolicy(str(tiny_model_dir), batch_wait_ms=20)
    yield policy
    asyncio.run(policy.aclose())
