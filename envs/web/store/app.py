"""The store's web app: server-rendered HTML pages (no JS, no external assets) plus a small JSON API.

A browser env drives the pages through stable element ids (search-input, search-button, result-K,
option-GROUP-VALUE, buy-now, next-page, prev-page, back-to-search; results carry data-asin, the buy form
carries the chosen options as hidden opt.GROUP inputs); a trainer creates sessions and reads rewards through
/api. Sessions live in memory and share nothing but the read-only catalog. All text is escaped with
html.escape, URLs are built with urlencode.
"""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from agentenv.envs.web.store.catalog import Product
from agentenv.envs.web.store.instructions import Goal
from agentenv.envs.web.store.reward import get_reward
from agentenv.envs.web.store.search import SearchIndex

PAGE_SIZE = 10
MAX_RESULTS = 50  # WebShop also keeps the top 50 search results
OPTION_PREFIX = "opt."


@dataclass
class Session:
    goal: Goal
    goal_index: int | None
    options: dict[str, dict[str, str]] = field(default_factory=dict)  # asin -> group -> value
    purchase: dict[str, Any] | None = None


def slug(text: str) -> str:
    """A readable id fragment: lowercase, runs of other characters become one dash."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def option_id(group: str, value: str) -> str:
    return f"option-{slug(group)}-{slug(value)}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _href(path: str, **params: object) -> str:
    return f"{path}?{urlencode({k: v for k, v in params.items() if v is not None})}"


def _url(path: str, **params: object) -> str:
    """An escaped href (``&`` becomes ``&amp;``; browsers and parsers unescape it)."""
    return _e(_href(path, **params))


def _page(title: str, session: Session, body: str, status: int = 200) -> HTMLResponse:
    doc = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title></head><body>"
        f"<div id='instruction'>Instruction: {_e(session.goal.instruction)}</div>{body}</body></html>"
    )
    return HTMLResponse(doc, status_code=status)


def _search_form(sid: str, query: str = "") -> str:
    return (
        "<form id='search-form' method='get' action='/search'>"
        f"<input type='hidden' name='session' value='{_e(sid)}'>"
        f"<input id='search-input' type='text' name='q' value='{_e(query)}'>"
        "<button id='search-button' type='submit'>Search</button></form>"
    )


def create_app(catalog: list[Product], goals: list[Goal], index: SearchIndex | None = None) -> FastAPI:
    """The store over ``catalog``; sessions are created for ``goals`` (by index) or for a goal given as JSON."""
    app = FastAPI(title="agentenv store")
    products = {p.asin: p for p in catalog}
    search_index = index or SearchIndex(catalog)
    sessions: dict[str, Session] = {}
    counter = itertools.count(1)
    app.state.sessions = sessions

    def session_of(sid: str) -> Session:
        if sid not in sessions:
            raise HTTPException(404, f"unknown session {sid!r}")
        return sessions[sid]

    def product_of(asin: str) -> Product:
        if asin not in products:
            raise HTTPException(404, f"unknown product {asin!r}")
        return products[asin]

    @app.post("/api/session")
    async def new_session(request: Request) -> JSONResponse:
        body = await request.body()
        data = (await request.json()) if body else {}
        if "goal" in data:
            goal, index_ = Goal.from_dict(data["goal"]), None
        else:
            index_ = int(data.get("goal_index", 0))
            if not 0 <= index_ < len(goals):
                raise HTTPException(400, f"goal_index must be in [0, {len(goals)})")
            goal = goals[index_]
        sid = f"s{next(counter)}"
        sessions[sid] = Session(goal=goal, goal_index=index_)
        return JSONResponse({"session": sid, "instruction": goal.instruction, "goal_index": index_,
                             "url": f"/?{urlencode({'session': sid})}"})

    @app.get("/api/result/{sid}")
    def result(sid: str) -> JSONResponse:
        s = session_of(sid)
        p = s.purchase
        return JSONResponse({"session": sid, "bought": p is not None, "asin": p and p["asin"],
                             "options": p and p["options"], "reward": p["reward"] if p else 0.0,
                             "parts": p and p["parts"]})

    @app.get("/", response_class=HTMLResponse)
    def home(session: str) -> HTMLResponse:
        s = session_of(session)
        return _page("Store", s, f"<h1 id='home'>Store</h1>{_search_form(session)}")

    @app.get("/search", response_class=HTMLResponse)
    def search(session: str, q: str = "", page: int = 1) -> HTMLResponse:
        s = session_of(session)
        asins = search_index.search(q, limit=MAX_RESULTS)
        pages = max(1, -(-len(asins) // PAGE_SIZE))
        page = min(max(1, page), pages)
        shown = asins[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        items = []
        for k, asin in enumerate(shown, 1):
            p = products[asin]
            href = _url(f"/item/{quote(asin)}", session=session, q=q, page=page)
            items.append(
                f"<li><a id='result-{k}' class='result' data-asin='{_e(asin)}' href='{href}'>{_e(asin)}</a> "
                f"<span class='result-title'>{_e(p.title)}</span> <span class='result-price'>${p.price:.2f}</span></li>"
            )
        nav = []
        if page > 1:
            nav.append(f"<a id='prev-page' href='{_url('/search', session=session, q=q, page=page - 1)}'>&lt; Prev</a>")
        if page < pages:
            nav.append(f"<a id='next-page' href='{_url('/search', session=session, q=q, page=page + 1)}'>Next &gt;</a>")
        body = (
            f"{_search_form(session, q)}<a id='back-to-home' href='{_url('/', session=session)}'>Home</a>"
            f"<h2 id='results-header'>Page {page} of {pages} ({len(asins)} results) for &quot;{_e(q)}&quot;</h2>"
            f"<ol id='results'>{''.join(items)}</ol><div id='pagination'>{' '.join(nav)}</div>"
        )
        return _page("Search results", s, body)

    @app.get("/item/{asin}", response_class=HTMLResponse)
    def item(asin: str, session: str, q: str | None = None, page: int = 1) -> HTMLResponse:
        s = session_of(session)
        p = product_of(asin)
        chosen = s.options.get(asin, {})
        groups = []
        for group, values in p.options.items():
            links = []
            for v in values:
                selected = chosen.get(group) == v
                href = _url("/choose", session=session, asin=asin, group=group, value=v, q=q, page=page)
                links.append(
                    f"<a id='{_e(option_id(group, v))}' class='option{' selected' if selected else ''}' "
                    f"aria-pressed='{str(selected).lower()}' href='{href}'>{_e(v)}</a>"
                )
            groups.append(
                f"<div class='option-group' id='options-{_e(slug(group))}'>"
                f"<span class='option-label'>{_e(group)}:</span> {' '.join(links)}</div>"
            )
        hidden = "".join(f"<input type='hidden' name='{_e(OPTION_PREFIX + g)}' value='{_e(v)}'>"
                         for g, v in chosen.items())
        back = _url("/search", session=session, q=q, page=page) if q is not None else _url("/", session=session)
        body = (
            f"<a id='back-to-search' href='{back}'>&lt; Back to Search</a>"
            f"<h1 id='product-title'>{_e(p.title)}</h1>"
            f"<p id='product-price'>Price: ${p.price:.2f}</p><p id='product-rating'>Rating: {p.rating:.1f} / 5</p>"
            f"{''.join(groups)}"
            "<form id='buy-form' method='post' action='/buy'>"
            f"<input type='hidden' name='session' value='{_e(session)}'>"
            f"<input type='hidden' name='asin' value='{_e(asin)}'>{hidden}"
            "<button id='buy-now' type='submit'>Buy Now</button></form>"
            f"<p id='product-description'>{_e(p.description)}</p>"
            f"<ul id='product-bullets'>{''.join(f'<li>{_e(b)}</li>' for b in p.bullets)}</ul>"
            f"<p id='product-attributes'>Attributes: {_e(', '.join(p.attributes))}</p>"
        )
        return _page(p.title, s, body)

    @app.get("/choose")
    def choose(session: str, asin: str, group: str, value: str, q: str | None = None,
               page: int = 1) -> RedirectResponse:
        s = session_of(session)
        p = product_of(asin)
        if value not in p.options.get(group, ()):
            raise HTTPException(400, f"{value!r} is not an option of {group!r}")
        s.options.setdefault(asin, {})[group] = value
        return RedirectResponse(_href(f"/item/{quote(asin)}", session=session, q=q, page=page), status_code=303)

    @app.api_route("/buy", methods=["GET", "POST"], response_class=HTMLResponse)
    async def buy(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(parse_qsl((await request.body()).decode()))
        s = session_of(params.get("session", ""))
        if s.purchase is None:
            p = product_of(params.get("asin", ""))
            chosen = dict(s.options.get(p.asin, {}))
            chosen.update({k[len(OPTION_PREFIX):]: v for k, v in params.items() if k.startswith(OPTION_PREFIX)})
            chosen = {g: v for g, v in chosen.items() if v in p.options.get(g, ())}
            parts = get_reward(p, s.goal, chosen)
            s.purchase = {"asin": p.asin, "options": chosen, "reward": parts["reward"], "parts": parts}
        bought = s.purchase
        rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in bought["parts"].items())
        body = (
            f"<h1 id='done'>Thank you for shopping with us!</h1><p id='bought-asin'>{_e(bought['asin'])}</p>"
            f"<p id='bought-options'>{_e(', '.join(f'{g}: {v}' for g, v in bought['options'].items()))}</p>"
            f"<p>Your score (min 0.0, max 1.0): <span id='reward'>{bought['reward']:.4f}</span></p>"
            f"<table id='reward-parts'>{rows}</table>"
        )
        return _page("Done", s, body)

    return app
