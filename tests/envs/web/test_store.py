"""The WebShop-style store: catalog, goals, reward, search, pages, expert (driven over HTTP as a browser would)."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from agentenv.envs.web.store.app import create_app, option_id
from agentenv.envs.web.store.catalog import CATEGORIES, Product, build_catalog
from agentenv.envs.web.store.expert import index_for, next_step, plan, query_for
from agentenv.envs.web.store.instructions import Goal, goals
from agentenv.envs.web.store.reward import get_reward


@pytest.fixture(scope="module")
def catalog() -> list[Product]:
    return build_catalog()


@pytest.fixture(scope="module")
def test_goals(catalog: list[Product]) -> list[Goal]:
    return goals("test", catalog=catalog)


@pytest.fixture(scope="module")
def train_goals(catalog: list[Product]) -> list[Goal]:
    return goals("train", catalog=catalog)


@pytest.fixture(scope="module")
def client(catalog: list[Product], test_goals: list[Goal]) -> TestClient:
    return TestClient(create_app(catalog, test_goals, index=index_for(catalog)))


class Page(HTMLParser):
    """Elements by id (tag, attrs, text), and the hidden inputs of each form: what a browser env would see."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str]] = {}
        self.forms: dict[str, dict[str, str]] = {}
        self._form: str | None = None
        self._open: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            assert a["id"] not in self.ids, f"duplicate id {a['id']}"
            self.ids[a["id"]] = {"tag": tag, **a, "text": ""}
            self._open.append(a["id"])
        if tag == "form":
            self._form = a.get("id", "")
            self.forms[self._form] = {}
        if tag == "input" and self._form is not None and a.get("type") == "hidden":
            self.forms[self._form][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        if self._open and self.ids[self._open[-1]]["tag"] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for i in self._open:
            self.ids[i]["text"] += data

    def result_ids(self) -> dict[str, str]:
        """asin -> element id of the results on a results page."""
        return {e["data-asin"]: i for i, e in self.ids.items() if i.startswith("result-")}


def _session(client: TestClient, goal_index: int) -> str:
    r = client.post("/api/session", json={"goal_index": goal_index})
    assert r.status_code == 200
    return str(r.json()["session"])


# --- catalog and goals -------------------------------------------------------------------------------------


def test_catalog_size_and_determinism(catalog: list[Product]) -> None:
    assert len(catalog) == 2400
    assert len(build_catalog(seed=0, size=2000)) == 2000
    assert 8 <= len({p.category for p in catalog}) == len(CATEGORIES) <= 12
    assert len({p.asin for p in catalog}) == len(catalog) == len({p.title for p in catalog})
    assert all(p.asin.startswith("B0") and len(p.asin) == 10 for p in catalog)
    assert build_catalog(seed=0) == catalog
    other = build_catalog(seed=1)
    assert [p.asin for p in other] != [p.asin for p in catalog]
    assert [p.title for p in other] != [p.title for p in catalog]


def test_products_are_well_formed(catalog: list[Product]) -> None:
    for p in catalog:
        assert p.options and all(p.options.values()) and 3 <= len(p.attributes) <= 5 and p.price > 0
        assert p.bullets and p.description and 3.0 <= p.rating <= 5.0
        # option values never occur in the texts WebShop's option reward falls back on
        text = " ".join((p.title, *p.bullets, p.description)).lower()
        assert not [v for vs in p.options.values() for v in vs if v in text], p


def test_splits_are_disjoint_and_large_enough(catalog: list[Product], train_goals: list[Goal],
                                              test_goals: list[Goal]) -> None:
    assert len(train_goals) >= 1000 and len(test_goals) >= 200
    assert not {g.asin for g in train_goals} & {g.asin for g in test_goals}
    assert goals("test", catalog=catalog) == test_goals
    assert goals("test", seed=1) != test_goals
    products = {p.asin: p for p in catalog}
    for g in train_goals + test_goals:
        p = products[g.asin]
        assert 1 <= len(g.attributes) <= 3 and set(g.attributes) <= set(p.attributes)
        assert g.options and all(v in p.options[k] for k, v in g.options.items())
        assert g.price_upper > p.price and f"price lower than {g.price_upper:.2f} dollars" in g.instruction
        assert p.product_type in g.instruction and all(a in g.instruction for a in g.attributes)
    with pytest.raises(ValueError):
        goals("validation")


# --- reward ------------------------------------------------------------------------------------------------

HEADPHONES = Product(
    asin="B0TEST0001", title="Sonaro Wireless Foldable Over-Ear Headphones", brand="Sonaro", category="headphones",
    product_type="over-ear headphones", category_path=("Electronics", "Headphones", "Over-Ear Headphones"),
    attributes=("wireless", "foldable", "deep bass"),
    options={"color": ("black", "silver"), "size": ("small", "large")}, price=50.0,
    description="Comfortable over-ear headphones.", bullets=("Wireless: no cables.",), rating=4.5,
)
GOAL = Goal(
    asin=HEADPHONES.asin, category="headphones", product_type="over-ear headphones",
    category_path=HEADPHONES.category_path, name=HEADPHONES.title, attributes=("wireless", "deep bass"),
    options={"color": "black", "size": "large"}, price_upper=60.0,
    instruction="i need wireless and deep bass over-ear headphones with color: black, and size: large",
)


def test_reward_formula_on_a_hand_made_case() -> None:
    right = {"color": "black", "size": "large"}
    assert get_reward(HEADPHONES, GOAL, right)["reward"] == 1.0
    # r_type * (attrs + options + price) / (2 + 2 + 1)
    assert get_reward(HEADPHONES, GOAL, {"color": "silver", "size": "large"})["reward"] == pytest.approx(4 / 5)
    assert get_reward(HEADPHONES, GOAL, {})["reward"] == pytest.approx(3 / 5)
    over = get_reward(HEADPHONES, GOAL, right, price=70.0)
    assert over["reward"] == pytest.approx(4 / 5) and over["r_price"] is False

    # same type, another brand: title_score 3/6 (over, ear, headphones), 1 of 2 attributes, 1 option
    other = dataclasses.replace(HEADPHONES, asin="B0TEST0002", title="Auralink Noise Cancelling Over-Ear Headphones",
                                attributes=("noise cancelling", "wireless"), options={"color": ("black",)},
                                bullets=(), description="Quiet.", price=40.0)
    parts = get_reward(other, GOAL, {"color": "black"})
    assert parts["title_score"] == pytest.approx(0.5) and parts["query_match"] and parts["r_type"] == 1.0
    assert parts["reward"] == pytest.approx(3 / 5)

    # weak title overlap (1/6) with no query or category match: r_type 0.5; only the price matches
    toy = dataclasses.replace(other, asin="B0TEST0003", title="Tinytune Kids Headphones", product_type="kids toy",
                              category_path=("Toys", "Kids Toys"), attributes=("volume limited",), options={})
    parts = get_reward(toy, GOAL, {})
    assert parts["r_type"] == 0.5 and parts["reward"] == pytest.approx(0.5 * 1 / 5)

    # another kind of product altogether: no title overlap, r_type 0
    coffee = dataclasses.replace(toy, title="Roastery Lane Organic Ground Coffee", product_type="ground coffee",
                                 category_path=("Grocery & Gourmet Food", "Coffee", "Ground Coffee"))
    assert get_reward(coffee, GOAL, {})["reward"] == 0.0


def test_own_product_scores_one_and_a_wrong_option_costs_exactly_its_weight(catalog: list[Product],
                                                                            test_goals: list[Goal]) -> None:
    products = {p.asin: p for p in catalog}
    for g in test_goals:
        p = products[g.asin]
        assert get_reward(p, g, dict(g.options))["reward"] == 1.0
        denom = len(g.attributes) + len(g.options) + 1
        group = next(iter(g.options))
        wrong = [v for v in p.options[group] if v != g.options[group]]
        if wrong:
            parts = get_reward(p, g, {**g.options, group: wrong[0]})
            assert parts["reward"] == pytest.approx((denom - 1) / denom), (g, wrong[0])
        over = get_reward(p, g, dict(g.options), price=g.price_upper + 1)
        assert over["reward"] == pytest.approx((denom - 1) / denom)
        # a product from another category is not the same type
        stranger = next(q for q in catalog if q.category != p.category)
        assert get_reward(stranger, g, {})["reward"] < 0.5


# --- search and expert -------------------------------------------------------------------------------------


def test_search_finds_every_test_goal_on_the_first_page(catalog: list[Product], test_goals: list[Goal]) -> None:
    index = index_for(catalog)
    for g in test_goals:
        assert g.asin in index.search(query_for(g, catalog, index), limit=10), g
    results = index.search("wireless headphones")
    assert results == index.search("headphones wireless") and len(results) == 50
    assert index.search("zzzz unknown words") == []


def test_plan_shape(catalog: list[Product], test_goals: list[Goal]) -> None:
    g = test_goals[0]
    steps = plan(g, catalog)
    assert steps[0][0] == "search" and steps[1] == ("click_result", g.asin) and steps[-1] == ("buy",)
    assert steps[2:-1] == [("choose_option", k, v) for k, v in sorted(g.options.items())]


def test_next_step_recovers_from_any_state(catalog: list[Product], test_goals: list[Goal]) -> None:
    g = test_goals[1]
    wrong = next(p.asin for p in catalog if p.asin != g.asin)
    query = query_for(g, catalog)
    assert next_step(g, catalog, {"page": "home"}) == ("search", query)
    assert next_step(g, catalog, {"page": "search", "results": [wrong]}) == ("search", query)
    assert next_step(g, catalog, {"page": "search", "results": [wrong, g.asin]}) == ("click_result", g.asin)
    assert next_step(g, catalog, {"page": "item", "asin": wrong, "options": {}}) == ("back_to_search",)
    first, *_ = sorted(g.options.items())
    assert next_step(g, catalog, {"page": "item", "asin": g.asin, "options": {}}) == ("choose_option", *first)
    assert next_step(g, catalog, {"page": "item", "asin": g.asin, "options": dict(g.options)}) == ("buy",)
    assert next_step(g, catalog, {"page": "done"}) is None


# --- the app over HTTP -------------------------------------------------------------------------------------


def _state(page: Page, asin: str | None) -> dict:
    if "done" in page.ids:
        return {"page": "done"}
    if "buy-now" in page.ids:
        chosen = {k[len("opt."):]: v for k, v in page.forms["buy-form"].items() if k.startswith("opt.")}
        return {"page": "item", "asin": asin, "options": chosen}
    if "results" in page.ids:
        return {"page": "search", "results": list(page.result_ids())}
    return {"page": "home"}


def _act(client: TestClient, page: Page, step: tuple[str, ...], sid: str) -> tuple[Page, str | None]:
    """Carry out one expert step the way a browser would: by element id on the current page."""
    kind = step[0]
    if kind == "search":
        assert "search-input" in page.ids and "search-button" in page.ids
        r = client.get("/search?" + urlencode({"session": sid, "q": step[1]}))
        return Page(r.text), None
    if kind == "click_result":
        element = page.ids[page.result_ids()[step[1]]]
        return Page(client.get(element["href"]).text), step[1]
    if kind == "back_to_search":
        return Page(client.get(page.ids["back-to-search"]["href"]).text), None
    if kind == "choose_option":
        link = page.ids[option_id(step[1], step[2])]
        new = Page(client.get(link["href"]).text)
        assert new.ids[option_id(step[1], step[2])]["aria-pressed"] == "true"
        return new, new.forms["buy-form"]["asin"]
    assert kind == "buy"
    return Page(client.post("/buy", data=page.forms["buy-form"]).text), None


def test_expert_plans_executed_over_http_score_one(client: TestClient, test_goals: list[Goal],
                                                   catalog: list[Product]) -> None:
    for i in range(100):
        sid = _session(client, i)
        page = Page(client.get("/", params={"session": sid}).text)
        assert test_goals[i].instruction in page.ids["instruction"]["text"]
        for step in plan(test_goals[i], catalog):
            page, _ = _act(client, page, step, sid)
        assert page.ids["reward"]["text"] == "1.0000"
        result = client.get(f"/api/result/{sid}").json()
        assert result["bought"] and result["asin"] == test_goals[i].asin and result["reward"] == 1.0


def test_expert_recovers_after_a_wrong_click_over_http(client: TestClient, test_goals: list[Goal],
                                                       catalog: list[Product]) -> None:
    g = test_goals[5]
    sid = _session(client, 5)
    page = Page(client.get("/search", params={"session": sid, "q": g.product_type}).text)
    wrong = next(a for a in page.result_ids() if a != g.asin)
    page, asin = _act(client, page, ("click_result", wrong), sid)
    for _ in range(12):
        step = next_step(g, catalog, _state(page, asin))
        if step is None:
            break
        page, asin = _act(client, page, step, sid)
    assert client.get(f"/api/result/{sid}").json()["reward"] == 1.0


def test_pages_have_the_documented_ids(client: TestClient, test_goals: list[Goal]) -> None:
    sid = _session(client, 0)
    page = Page(client.get("/search", params={"session": sid, "q": "headphones"}).text)
    assert {f"result-{k}" for k in range(1, 11)} <= set(page.ids) and "next-page" in page.ids
    assert "prev-page" not in page.ids
    last = Page(client.get("/search", params={"session": sid, "q": "headphones", "page": 5}).text)
    assert "prev-page" in last.ids and "next-page" not in last.ids
    second = Page(client.get(page.ids["next-page"]["href"]).text)
    assert not set(second.result_ids()) & set(page.result_ids())
    item = Page(client.get(page.ids["result-1"]["href"]).text)
    assert {"buy-now", "back-to-search", "product-title", "product-price"} <= set(item.ids)
    assert client.get("/", params={"session": "nope"}).status_code == 404
    assert client.post("/api/session", json={"goal_index": 10**6}).status_code == 400


def test_text_is_escaped(catalog: list[Product], test_goals: list[Goal]) -> None:
    evil = dataclasses.replace(catalog[0], title="<script>alert('x')</script> Evil Running Shoes")
    goal = dataclasses.replace(test_goals[0], instruction="i need <b>bold</b> shoes")
    client = TestClient(create_app([evil, *catalog[1:]], [goal]))
    sid = _session(client, 0)
    pages = [client.get("/search", params={"session": sid, "q": "evil script"}).text,
             client.get(f"/item/{evil.asin}", params={"session": sid}).text,
             client.get("/search", params={"session": sid, "q": "<script>x</script>"}).text]
    for text in pages:
        assert "<script>" not in text and "<b>" not in text
        assert "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in pages[0] and "&lt;script&gt;" in pages[2]


def test_sessions_do_not_share_state(client: TestClient, test_goals: list[Goal]) -> None:
    a, b = _session(client, 3), _session(client, 4)
    asin = test_goals[3].asin
    group, value = next(iter(test_goals[3].options.items()))
    client.get("/choose", params={"session": a, "asin": asin, "group": group, "value": value})
    page_a = Page(client.get(f"/item/{asin}", params={"session": a}).text)
    page_b = Page(client.get(f"/item/{asin}", params={"session": b}).text)
    assert page_a.ids[option_id(group, value)]["aria-pressed"] == "true"
    assert page_b.ids[option_id(group, value)]["aria-pressed"] == "false"
    assert test_goals[3].instruction in page_a.ids["instruction"]["text"]
    assert test_goals[4].instruction in page_b.ids["instruction"]["text"]
    client.post("/buy", data={"session": a, "asin": asin})
    assert client.get(f"/api/result/{a}").json()["bought"] is True
    assert client.get(f"/api/result/{b}").json() == {"session": b, "bought": False, "asin": None, "options": None,
                                                     "reward": 0.0, "parts": None}


def test_session_for_a_given_goal_and_buying_by_get(client: TestClient, catalog: list[Product]) -> None:
    p = catalog[7]
    group, values = next(iter(p.options.items()))
    goal = Goal(asin=p.asin, category=p.category, product_type=p.product_type, category_path=p.category_path,
                name=p.title, attributes=p.attributes[:1], options={group: values[0]}, price_upper=p.price + 1,
                instruction="buy this")
    r = client.post("/api/session", json={"goal": goal.to_dict()})
    sid = r.json()["session"]
    assert r.json()["instruction"] == "buy this" and r.json()["goal_index"] is None
    page = Page(client.get("/buy", params={"session": sid, "asin": p.asin, f"opt.{group}": values[0]}).text)
    assert page.ids["reward"]["text"] == "1.0000"
    # the first purchase is final
    client.get("/buy", params={"session": sid, "asin": catalog[8].asin})
    assert client.get(f"/api/result/{sid}").json()["asin"] == p.asin
