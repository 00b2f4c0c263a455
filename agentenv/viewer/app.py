"""The viewer's HTTP app: a JSON API over runs and trajectory stores, and the static page that uses it.

Every answer is JSON that the page can show: unknown ids are 404 ``{"error": ...}``, a corrupt shard is
skipped and named in ``errors``, a missing column is filled and named; an unexpected failure still answers
``{"error": ...}`` (status 500) so the page prints it instead of going blank.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from agentenv.store import CorruptShardError
from agentenv.viewer.data import (
    Sources,
    StoreIndex,
    StoreInfo,
    discover,
    episode_advantage,
    episode_json,
    load_advantages,
    read_metrics,
)
from agentenv.viewer.export import export_episode_html

__all__ = ["create_viewer_app"]

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
_FILTERS = ("env", "task_type", "status", "success", "failure_cause", "policy_version", "group", "kind",
            "min_reward", "max_reward", "min_turns", "max_turns", "q")


class _NotFound(Exception):
    pass


class _Tokenizers:
    """Tokenizers by name, loaded once; a name that fails to load is remembered with its reason."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> tuple[Any, str | None]:
        with self._lock:
            if name in self._loaded:
                return self._loaded[name], None
            if name in self._failed:
                return None, self._failed[name]
            try:
                from agentenv.policies.catalog import load_tokenizer

                self._loaded[name] = load_tokenizer(name)
                return self._loaded[name], None
            except Exception as e:  # a missing model, no transformers, a broken folder: the page shows ids
                self._failed[name] = f"tokenizer {name!r} could not be loaded ({type(e).__name__}: {e})"
                return None, self._failed[name]


def _decoder(tokenizer: Any) -> Callable[[list[int]], list[str | None]]:
    cache: dict[int, str] = {}

    def decode(ids: list[int]) -> list[str | None]:
        missing = sorted({i for i in ids if i not in cache})
        if missing:
            for i, text in zip(missing, tokenizer.batch_decode([[i] for i in missing]), strict=True):
                cache[i] = text
        return [cache[i] for i in ids]

    return decode


def create_viewer_app(paths: Sequence[str | Path], tokenizer: str | None = None) -> FastAPI:
    """The viewer over ``paths`` (runs, stores, or folders of them); ``tokenizer`` overrides the one a run's
    config names, for decoding token ids to text."""
    sources: Sources = discover(paths)
    indexes: dict[str, StoreIndex] = {}
    tokenizers = _Tokenizers()
    decoders: dict[int, Callable[[list[int]], list[str | None]]] = {}
    app = FastAPI(title="agentenv viewer", docs_url=None, redoc_url=None)

    def store_info(store_id: str) -> StoreInfo:
        if store_id not in sources.stores:
            raise _NotFound(f"unknown store {store_id!r}; known: {', '.join(sources.stores) or 'none'}")
        return sources.stores[store_id]

    def index(store_id: str) -> StoreIndex:
        info = store_info(store_id)
        if store_id not in indexes:
            indexes[store_id] = StoreIndex(info.path)
        return indexes[store_id]

    def tokenizer_names(info: StoreInfo, policy_id: str, asked: str | None) -> list[str]:
        names = [asked, tokenizer]
        if info.run is not None:
            model = sources.runs[info.run].config().get("model")
            names.append(model if isinstance(model, str) else None)
        from agentenv.policies.catalog import CATALOG

        names.append(policy_id if policy_id in CATALOG or (policy_id and Path(policy_id).is_dir()) else None)
        return [n for n in dict.fromkeys(names) if n]

    @app.exception_handler(_NotFound)
    async def not_found(request: Request, exc: _NotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("viewer: %s failed", request.url.path)
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    @app.get("/", response_model=None)
    def page() -> Response:
        if (STATIC / "index.html").is_file():
            return FileResponse(STATIC / "index.html")
        return HTMLResponse("<!doctype html><title>agentenv viewer</title><p>The viewer's page is not installed "
                            "(agentenv/viewer/static/index.html is missing); the API is at /api/sources.</p>")

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")

    @app.get("/api/sources")
    def api_sources() -> dict[str, Any]:
        return {"runs": [r.json() for r in sources.runs.values()],
                "stores": [s.json() for s in sources.stores.values()], "errors": sources.problems}

    @app.get("/api/runs/{run_id}/metrics")
    def api_metrics(run_id: str) -> dict[str, Any]:
        if run_id not in sources.runs:
            raise _NotFound(f"unknown run {run_id!r}; known: {', '.join(sources.runs) or 'none'}")
        run = sources.runs[run_id]
        if not run.has_metrics:
            return {"records": [], "keys": [], "error": f"{run.path} has no metrics.jsonl (yet)"}
        return read_metrics(run.path / "metrics.jsonl")

    @app.get("/api/stores/{store_id}/episodes")
    def api_episodes(request: Request, store_id: str, offset: int = 0, limit: int = 50, sort: str | None = None,
                     order: str = "asc") -> dict[str, Any]:
        filters = {k: request.query_params.get(k) for k in _FILTERS}
        offset, limit = max(0, offset), max(1, min(limit, 1000))
        return index(store_id).query(filters, sort, order.lower() == "desc", offset, limit)

    @app.get("/api/stores/{store_id}/episodes/{trajectory_id}")
    def api_episode(store_id: str, trajectory_id: str, tokenizer: str | None = None) -> dict[str, Any]:
        return episode(store_id, trajectory_id, tokenizer)

    def episode(store_id: str, trajectory_id: str, asked: str | None) -> dict[str, Any]:
        idx = index(store_id)
        try:
            traj = idx.trajectory(trajectory_id)
        except CorruptShardError as e:
            message = f"the shard holding this episode is unreadable: {e.reason}"
            return {"trajectory_id": trajectory_id, "turns": [], "notes": [message], "load_error": message}
        if traj is None:
            raise _NotFound(f"no episode {trajectory_id!r} in store {store_id!r}")
        notes: list[str] = []
        decode = None
        names = tokenizer_names(store_info(store_id), traj.policy_id, asked)
        for name in names:
            loaded, problem = tokenizers.get(name)
            if loaded is not None:
                decode = decoders.setdefault(id(loaded), _decoder(loaded))
                break
            notes.append(str(problem))
        if decode is None:
            notes.append("token texts are not shown: " + ("no tokenizer could be loaded" if names else
                         "no tokenizer is known (pass ?tokenizer= or agentenv view --tokenizer)"))
        advantages = load_advantages(idx.store.directory).get(trajectory_id, [])
        out = episode_json(traj, decode, advantages)
        out["notes"] = notes
        out["load_error"] = None
        return out

    @app.get("/api/stores/{store_id}/episodes/{trajectory_id}/export")
    def api_export(store_id: str, trajectory_id: str, tokenizer: str | None = None) -> Response:
        data = episode(store_id, trajectory_id, tokenizer)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in trajectory_id)
        return HTMLResponse(export_episode_html(data),
                            headers={"Content-Disposition": f'attachment; filename="{safe}.html"'})

    @app.get("/api/stores/{store_id}/groups/{group_id}")
    def api_group(store_id: str, group_id: str) -> dict[str, Any]:
        idx = index(store_id)
        members = idx.rows_where("group_id", group_id)
        if not members:
            raise _NotFound(f"no group {group_id!r} in store {store_id!r}")
        ids = {m["trajectory_id"] for m in members}
        recorded = load_advantages(idx.store.directory)
        for m in members:  # what the update trained each member with, when the run recorded it
            m["advantage"] = episode_advantage(recorded.get(m["trajectory_id"], []))
        children: dict[str, list[str]] = {m["trajectory_id"]: [] for m in members}
        for m in members:
            parent = m["parent_trajectory_id"]
            if parent in children:
                children[parent].append(m["trajectory_id"])
        tree = [{"id": m["trajectory_id"], "parent": m["parent_trajectory_id"] if m["parent_trajectory_id"] in ids
                 else None, "branch_turn": m["branch_turn"], "reward": m["reward"], "success": m["success"],
                 "kind": m["kind"], "turns": m["turns"], "children": children[m["trajectory_id"]]}
                for m in members]
        return {"group_id": group_id, "members": members, "tree": tree, "errors": list(idx.errors)}

    app.state.sources = sources
    return app
