"""WebShop-style goals: a target product, 1-3 of its attributes, some of its options and a price bound.

Products are split by a hash of their asin (not by goal), so a held-out goal's product never appears in a
training goal; the price bound follows WebShop's ``get_synthetic_goals`` (two of the first four multiples
of ten above the price, take the larger).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from agentenv.envs.web.store.catalog import Product, build_catalog

SPLITS = ("train", "test")
TEST_FRACTION_PERCENT = 20
PRICE_RANGE = [10.0 * i for i in range(1, 100)]
_OPENERS = ("i need", "i am looking for", "i want", "find me", "i'm looking for", "i would like")


@dataclass(frozen=True)
class Goal:
    """What the shopper asks for; ``options`` maps an option group to the one required value."""

    asin: str
    category: str
    product_type: str
    category_path: tuple[str, ...]
    name: str  # the target product's title (WebShop's goal['name'])
    attributes: tuple[str, ...]
    options: dict[str, str] = field(hash=False)
    price_upper: float
    instruction: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Goal:
        return cls(
            asin=str(data["asin"]), category=str(data["category"]), product_type=str(data["product_type"]),
            category_path=tuple(data.get("category_path", ())), name=str(data.get("name", "")),
            attributes=tuple(data["attributes"]), options={str(k): str(v) for k, v in data["options"].items()},
            price_upper=float(data["price_upper"]), instruction=str(data["instruction"]),
        )


def split_of(asin: str) -> str:
    """The split a product belongs to, from a hash of its asin (stable across seeds and Python runs)."""
    bucket = int(hashlib.sha256(asin.encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < TEST_FRACTION_PERCENT else "train"


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def make_goal(product: Product, rng: random.Random) -> Goal:
    """One goal for ``product``: sampled attributes, options and price bound, and its instruction text."""
    attributes = tuple(rng.sample(product.attributes, rng.randint(1, min(3, len(product.attributes)))))
    groups = sorted(product.options)
    chosen = rng.sample(groups, rng.randint(1, len(groups))) if groups else []
    options = {g: rng.choice(product.options[g]) for g in sorted(chosen)}
    above = [p for p in PRICE_RANGE if p > product.price][:4]
    price_upper = sorted(rng.sample(above, 2))[1] if len(above) >= 2 else 1000000.0
    desc = " and ".join(attributes)
    phrase = f"{desc} {product.product_type}"
    text = f"{rng.choice(_OPENERS)} {_a(phrase)} {phrase}"
    if options:
        text += " with " + ", and ".join(f"{g}: {v}" for g, v in options.items())
    if price_upper < 1000000.0:
        text += f", and price lower than {price_upper:.2f} dollars"
    return Goal(
        asin=product.asin, category=product.category, product_type=product.product_type,
        category_path=product.category_path, name=product.title, attributes=attributes, options=options,
        price_upper=price_upper, instruction=text,
    )


def goals(split: str, seed: int = 0, catalog: list[Product] | None = None, per_product: int = 1) -> list[Goal]:
    """The goals of ``split`` ("train" or "test"): ``per_product`` per product of that split, seeded."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    catalog = build_catalog(seed) if catalog is None else catalog
    rng = random.Random(f"goals-{seed}-{split}")
    return [make_goal(p, rng) for p in catalog if split_of(p.asin) == split for _ in range(per_product)]
