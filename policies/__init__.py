"""Policies: an embedded transformers model, random, expert, replay and human, and the model catalog.

``make_policy(spec)`` builds one from a short spec (what ``--policy`` takes on the command line). The
transformers policy imports torch, so it is loaded only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentenv.policy import Policy

from .catalog import CATALOG, build_tiny_model, cache_dir, resolve_model, resolve_tokenizer
from .human import HumanPolicy
from .replay import ReplayPolicy
from .scripted import ExpertPolicy, RandomPolicy

if TYPE_CHECKING:
    from .balanced import BalancedPolicy, policy_client
    from .embedded import TransformersPolicy
    from .openai_client import OpenAIPolicy

__all__ = [
    "CATALOG",
    "BalancedPolicy",
    "ExpertPolicy",
    "HumanPolicy",
    "OpenAIPolicy",
    "RandomPolicy",
    "ReplayPolicy",
    "TransformersPolicy",
    "build_tiny_model",
    "cache_dir",
    "make_policy",
    "policy_client",
    "resolve_model",
    "resolve_tokenizer",
]

_NAMED: dict[str, Callable[..., Policy]] = {"random": RandomPolicy, "expert": ExpertPolicy, "human": HumanPolicy}


def _transformers(path: str, **kwargs: Any) -> Policy:
    from .embedded import TransformersPolicy

    return TransformersPolicy(path, **kwargs)


def _replay(path: str, **kwargs: Any) -> Policy:
    if not path:
        raise ValueError("replay needs a trajectory store directory: replay:DIR")
    return ReplayPolicy.from_store(path, **kwargs)


def _server(urls: str, **kwargs: Any) -> Policy:
    from .balanced import policy_client

    return policy_client(urls, **{k: v for k, v in kwargs.items() if v is not None})


_PREFIXED: dict[str, Callable[..., Policy]] = {"replay:": _replay, "hf:": _transformers}


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """A policy from ``spec``: ``random``, ``expert``, ``human``, ``replay:DIR`` (a trajectory store),
    ``hf:PATH`` or a local model directory, a catalog model name (``smollm2-135m-instruct``), or the URL of
    an OpenAI-compatible server (``http://127.0.0.1:8000/v1``, see :class:`.openai_client.OpenAIPolicy`), or
    the URLs of several replicas joined by commas (``http://127.0.0.1:8001/v1,http://127.0.0.1:8002/v1``, see
    :class:`.balanced.BalancedPolicy`). ``kwargs`` go to the policy's constructor."""
    if spec in _NAMED:
        return _NAMED[spec](**kwargs)
    if spec.startswith(("http://", "https://")):
        return _server(spec, **kwargs)
    for prefix, factory in _PREFIXED.items():
        if spec.startswith(prefix):
            return factory(spec[len(prefix):], **kwargs)
    if spec in CATALOG or Path(spec).expanduser().is_dir():
        return _transformers(spec, **kwargs)
    choices = [*_NAMED, "replay:DIR", "hf:PATH", "a model directory", *sorted(CATALOG),
               "http://HOST:PORT/v1 (several: joined by commas)"]
    raise ValueError(f"unknown policy {spec!r}; choose one of: {', '.join(choices)}")


def __getattr__(name: str) -> Any:
    if name == "TransformersPolicy":  # imported lazily: it pulls in torch and transformers
        from .embedded import TransformersPolicy

        return TransformersPolicy
    if name == "OpenAIPolicy":  # the clients are imported lazily too: they need httpx (the serve extra)
        from .openai_client import OpenAIPolicy

        return OpenAIPolicy
    if name in ("BalancedPolicy", "policy_client"):
        from . import balanced

        return getattr(balanced, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
