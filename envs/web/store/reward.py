"""WebShop's purchase reward (web_agent_site/engine/goal.py: ``get_reward`` and its parts), without spaCy/thefuzz.

Followed as in WebShop:
- total = r_type * (n_attr_matched + n_option_matched + r_price) / (n_goal_attrs + n_goal_options + 1);
- r_type levels: 1 when the query, the category path (>= 2 shared parts) or the title (score > 0.2) match,
  else 0.5; then 0.1 when title_score < 0.1 and 0 when title_score == 0 (these override, as in WebShop);
- an attribute matches when found in the product's attribute list, else as a substring of its title,
  bullets or description; an option matches the goal's option values (exactly for the "size" group), else as
  a substring of the title, bullets or description; r_price = price <= price_upper.
Simplified:
- "query" is the product type (WebShop's products carry the search query they were scraped from);
- title_score counts the goal title's content words (lowercase, stopwords and numbers dropped) found in the
  bought title, where WebShop keeps spaCy's nouns;
- thefuzz's token_set_ratio > 85 becomes token-set containment (either set inside the other: the cases where
  that ratio is 100); colours are not normalised (the generated vocabulary is already canonical);
- option matches are capped at the number of goal options, so extra chosen options cannot push past 1.
"""

from __future__ import annotations

import re
from typing import Any

from agentenv.envs.web.store.catalog import Product
from agentenv.envs.web.store.instructions import Goal

EXACT_MATCH_OPTS = ("size",)
#: words left out of title_score: function words and the catalog's series names (WebShop keeps nouns only)
_STOP = frozenset(
    ("a", "an", "and", "the", "of", "for", "with", "in", "on", "to", "by", "from", "pro", "lite", "max", "plus",
     "air", "go", "classic", "essential", "ultra", "prime", "edge")
)


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _contains(a: str, b: str) -> bool:
    """Token-set containment either way: where thefuzz.token_set_ratio(a, b) is 100."""
    ta, tb = set(_tokens(a)), set(_tokens(b))
    return bool(ta) and bool(tb) and (ta <= tb or tb <= ta)


def _text(product: Product) -> str:
    return " ".join((product.title, " ".join(product.bullets), product.description)).lower()


def _content_words(title: str) -> set[str]:
    return {t for t in _tokens(title) if t not in _STOP and not t.isdigit()}


def get_type_reward(product: Product, goal: Goal) -> dict[str, Any]:
    """WebShop's get_type_reward: is the bought product the same kind of thing?"""
    query_match = product.product_type == goal.product_type
    category_match = len(set(product.category_path) & set(goal.category_path)) >= 2
    desired = _content_words(goal.name)
    bought = _content_words(product.title)
    title_score = len(desired & bought) / len(desired) if desired else 0.2
    r_type = 1.0 if (query_match or category_match or title_score > 0.2) else 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {"r_type": r_type, "query_match": query_match, "category_match": category_match,
            "title_score": title_score}


def get_attribute_reward(product: Product, goal: Goal) -> tuple[float, int]:
    """WebShop's get_attribute_reward: (fraction, count) of goal attributes the product has."""
    text = _text(product)
    matches = 0
    for g_attr in goal.attributes:
        if any(_contains(p_attr, g_attr) for p_attr in product.attributes) or g_attr.lower() in text:
            matches += 1
    return (matches / len(goal.attributes) if goal.attributes else 0.0), matches


def get_option_reward(product: Product, goal: Goal, chosen: dict[str, str]) -> tuple[float | None, int]:
    """WebShop's get_option_reward: each chosen option is checked against all goal option values."""
    goal_values = [v.lower() for v in goal.options.values()]
    text = _text(product)
    matches = 0
    for group, value in chosen.items():
        v = value.lower()
        exact = group.lower() in EXACT_MATCH_OPTS
        matched = v in goal_values if exact else any(_contains(g, v) for g in goal_values)
        if matched or v in text:
            matches += 1
    matches = min(matches, len(goal_values))
    return (matches / len(goal_values) if goal_values else None), matches


def get_reward(product: Product, goal: Goal, chosen: dict[str, str], price: float | None = None) -> dict[str, Any]:
    """The reward of buying ``product`` with ``chosen`` options for ``goal``: {"reward": total, parts...}."""
    price = product.price if price is None else price
    type_parts = get_type_reward(product, goal)
    r_price = price <= goal.price_upper
    r_att, n_att = get_attribute_reward(product, goal)
    r_option, n_opt = get_option_reward(product, goal, chosen)
    denom = len(goal.attributes) + len(goal.options) + 1
    total = type_parts["r_type"] * (n_att + n_opt + int(r_price)) / denom
    return {
        "reward": total, **type_parts, "r_att": r_att, "n_att": n_att, "r_option": r_option, "n_option": n_opt,
        "r_price": r_price, "w_att": len(goal.attributes) / denom, "w_option": len(goal.options) / denom,
        "w_price": 1 / denom,
    }
