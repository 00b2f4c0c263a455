"""A scripted expert for the store: a full plan for a goal, and the next step from any state (for DAgger).

Steps are tuples: ("search", query), ("click_result", asin), ("choose_option", group, value), ("buy",), and
("back_to_search",) to leave a wrong item page. The query is the shortest of a few candidates (the goal's
attributes and type, then with the brand, then the full title) that puts the product on the first results
page of the store's own search, so every plan is executable.
"""

from __future__ import annotations

from typing import Any

from agentenv.envs.web.store.catalog import Product
from agentenv.envs.web.store.instructions import Goal
from agentenv.envs.web.store.search import SearchIndex

Step = tuple[str, ...]
PAGE_SIZE = 10

_INDEX_CACHE: dict[int, tuple[list[Product], SearchIndex]] = {}


def index_for(catalog: list[Product]) -> SearchIndex:
    """The search index of ``catalog``, built once per catalog object (the catalog is kept alive with it)."""
    hit = _INDEX_CACHE.get(id(catalog))
    if hit is None or hit[0] is not catalog:
        if len(_INDEX_CACHE) > 8:
            _INDEX_CACHE.clear()
        hit = (catalog, SearchIndex(catalog))
        _INDEX_CACHE[id(catalog)] = hit
    return hit[1]


def query_for(goal: Goal, catalog: list[Product], index: SearchIndex | None = None) -> str:
    """A query that finds the goal's product on the first results page (falls back to the product's title)."""
    index = index or index_for(catalog)
    base = " ".join((*goal.attributes, goal.product_type))
    brand = next((p.brand for p in catalog if p.asin == goal.asin), "")
    for query in (base, f"{brand} {base}".strip(), goal.name, f"{goal.name} {base}"):
        if goal.asin in index.search(query, limit=PAGE_SIZE):
            return query
    return goal.name


def plan(goal: Goal, catalog: list[Product], index: SearchIndex | None = None) -> list[Step]:
    """Search, open the product, pick each required option (sorted by group), buy."""
    steps: list[Step] = [("search", query_for(goal, catalog, index)), ("click_result", goal.asin)]
    steps += [("choose_option", group, value) for group, value in sorted(goal.options.items())]
    return [*steps, ("buy",)]


def next_step(goal: Goal, catalog: list[Product], state: dict[str, Any],
              index: SearchIndex | None = None) -> Step | None:
    """The expert's step from ``state`` = {page, asin, options, results}; None once the episode is done.

    page is "home", "search", "item" or "done"; asin is the product on an item page, options the options
    chosen there, results the asins listed on a results page.
    """
    page = state.get("page", "home")
    if page == "done":
        return None
    if page == "search" and goal.asin in (state.get("results") or ()):
        return ("click_result", goal.asin)
    if page == "item":
        if state.get("asin") != goal.asin:
            return ("back_to_search",)
        chosen = state.get("options") or {}
        for group, value in sorted(goal.options.items()):
            if chosen.get(group) != value:
                return ("choose_option", group, value)
        return ("buy",)
    return ("search", query_for(goal, catalog, index))
