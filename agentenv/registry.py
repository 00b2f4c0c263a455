"""Environment registration on top of gymnasium's own registry.

Built-in and third-party environments are registered the same way: an entry point in the
``agentenv.envs`` group names a function that calls :func:`register`. Entry points are loaded when
``agentenv`` is imported (so that ``gymnasium.make("agentenv/...")`` finds them) and at the latest the first
time an id is looked up. Environment classes are lazy (``"module:Class"``), so loading the entry points and
listing environments imports none of them and importing agentenv stays cheap.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import logging
import threading
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

NAMESPACE = "agentenv"
ENTRY_POINT_GROUP = "agentenv.envs"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvInfo:
    id: str
    entry_point: str
    family: str
    description: str
    source: str


class UnknownEnvError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


_info: dict[str, EnvInfo] = {}
_plugins_loaded = False
_lock = threading.RLock()
_loading_source = "agentenv"


def register(
    id: str,
    entry_point: str,
    *,
    family: str = "custom",
    description: str = "",
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Register ``id`` (``"agentenv/Name-v0"``, or a bare ``"Name-v0"`` that gets the namespace)."""
    full_id = id if "/" in id else f"{NAMESPACE}/{id}"
    if not isinstance(entry_point, str) or ":" not in entry_point:
        raise ValueError(f"entry_point must be 'module:Class', got {entry_point!r}")
    with _lock:
        if full_id in gym.registry:
            del gym.registry[full_id]  # re-registration (reloads, tests) replaces the old spec
        gym.register(id=full_id, entry_point=entry_point, kwargs=kwargs or {}, disable_env_checker=True)
        _info[full_id] = EnvInfo(full_id, entry_point, family, description, _loading_source)


def load_plugins(force: bool = False) -> None:
    """Call every ``agentenv.envs`` entry point once; a broken plugin is logged, never fatal."""
    global _plugins_loaded, _loading_source
    with _lock:
        if _plugins_loaded and not force:
            return
        _plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            _loading_source = ep.dist.name if ep.dist is not None else ep.value
            try:
                ep.load()()
            except Exception as e:  # a third-party plugin must not break agentenv
                log.warning("could not load agentenv env plugin %s (%s): %s", ep.name, ep.value, e)
            finally:
                _loading_source = "agentenv"


def registered_envs() -> list[EnvInfo]:
    """Every environment id in the agentenv namespace (and ids registered through :func:`register`)."""
    load_plugins()
    infos = dict(_info)
    for env_id, spec in gym.registry.items():
        if spec.namespace == NAMESPACE and env_id not in infos:
            infos[env_id] = EnvInfo(env_id, str(spec.entry_point), "custom", "", "gymnasium")
    return sorted(infos.values(), key=lambda i: i.id)


def env_info(id: str) -> EnvInfo:
    return _info.get(resolve_id(id)) or EnvInfo(resolve_id(id), "", "custom", "", "gymnasium")


def is_url(id: str) -> bool:
    """An ``http(s)://`` env id names an env server (:mod:`agentenv.env_server`), not a registered env."""
    return id.startswith(("http://", "https://"))


def resolve_id(id: str) -> str:
    """The registered id that ``id`` names (the namespace may be omitted), or a did-you-mean error."""
    if is_url(id):
        return id
    if id.startswith("agentenv-testing/"):
        import agentenv.testing  # noqa: F401  # registers the test envs (fault injection, fakes)
    load_plugins()
    for candidate in (id, f"{NAMESPACE}/{id}"):
        if candidate in gym.registry:
            return candidate
    known = [e.id for e in registered_envs()] or list(gym.registry)
    lowered = {k.lower(): k for k in known}
    lowered.update({k.split("/", 1)[-1].lower(): k for k in known})
    close = difflib.get_close_matches(id.lower(), list(lowered), n=3, cutoff=0.5)
    hint = ", ".join(dict.fromkeys(lowered[c] for c in close))
    msg = f"unknown env {id!r}" + (f"; did you mean {hint}?" if hint else "")
    raise UnknownEnvError(msg + " (`agentenv envs` lists them)")


def make(id: str, **kwargs: Any) -> Any:
    """Build a registered environment, unwrapped: agentenv envs enforce their own limits and order.

    ``gymnasium.make("agentenv/...")`` also works and adds gymnasium's standard wrappers. A URL
    (``http://HOST:PORT``) makes a :class:`~agentenv.remote_env.RemoteEnv` client of that env server.
    """
    if is_url(id):
        from agentenv.remote_env import RemoteEnv

        return RemoteEnv(id, **kwargs)
    env = gym.make(resolve_id(id), disable_env_checker=True, **kwargs)
    return env.unwrapped


def node_resources(id: str, kwargs: dict[str, Any] | None = None) -> dict[str, float]:
    """The custom Ray resources a node needs to host ``id`` built with ``kwargs`` (``Env.node_resources``),
    found without building the env; an env server (a URL) or a plain gymnasium env needs none."""
    if is_url(id):
        return {}
    spec = gym.spec(resolve_id(id))
    entry = spec.entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
    method = getattr(entry, "node_resources", None)
    return dict(method({**spec.kwargs, **(kwargs or {})})) if callable(method) else {}
