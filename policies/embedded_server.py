"""The embedded policy server: the transformers policy behind the OpenAI-compatible API.

Concurrent requests are batched dynamically by :class:`~.embedded.TransformersPolicy` (requests that
arrive within a few milliseconds of each other run as one batch), so N clients cost far less than N
sequential generations. ``prompt_cache_key`` keeps one conversation's KV prefix between its requests.
"""

from __future__ import annotations

from typing import Any

from agentenv.serving import serve_app

from .openai_api import create_openai_app


def create_embedded_app(model: str, api_key: str | None = None, served_name: str | None = None,
                        **policy_kwargs: Any) -> Any:
    """The FastAPI app serving ``model`` (a catalog name or a model directory)."""
    from .embedded import TransformersPolicy

    policy = TransformersPolicy(model, name=served_name or model, **policy_kwargs)
    app = create_openai_app(policy, api_key=api_key, title="agentenv embedded policy server",
                            describe=lambda: {"batch_sizes": dict(policy.batch_sizes),
                                              "prefix_tokens": dict(policy.prefix_tokens)})
    app.state.policy = policy
    return app


def serve_embedded(model: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                   served_name: str | None = None, **policy_kwargs: Any) -> None:
    """Serve until interrupted; prints ``agentenv policy server (embedded): URL/v1 (model NAME)`` when ready."""
    app = create_embedded_app(model, api_key=api_key, served_name=served_name, **policy_kwargs)
    name = app.state.policy.name
    serve_app(app, host, port, ready=lambda url: f"agentenv policy server (embedded): {url}/v1 (model {name})")
