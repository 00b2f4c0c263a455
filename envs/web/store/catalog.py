"""A seeded, deterministic product catalog in WebShop's shape (hand-written vocabulary, no data files).

WebShop scrapes ~1M Amazon products; here a few thousand are generated from per-category vocabularies so the
store runs offline and episodes are reproducible. Option values never occur in a product's title, bullets or
description: WebShop's option reward also credits a bought option found in those texts, and keeping them apart
makes a wrong option a miss (tests check it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

_ASIN_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


@dataclass(frozen=True)
class Product:
    """One product; ``options`` maps an option group (size, color...) to the values offered."""

    asin: str
    title: str
    brand: str
    category: str
    product_type: str
    category_path: tuple[str, ...]
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]] = field(hash=False)
    price: float
    description: str
    bullets: tuple[str, ...]
    rating: float


@dataclass(frozen=True)
class _Category:
    name: str
    path: tuple[str, ...]
    types: tuple[str, ...]
    brands: tuple[str, ...]
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    price: tuple[float, float]
    nouns: tuple[str, ...]  # words for descriptions ("upper", "sole"...)


_COLORS = ("black", "white", "navy blue", "grey", "red", "olive green", "beige", "burgundy", "teal", "mustard yellow")

CATEGORIES: tuple[_Category, ...] = (
    _Category("shoes", ("Clothing, Shoes & Jewelry", "Shoes"),
              ("running shoes", "hiking boots", "sneakers", "loafers", "sandals", "slip on shoes"),
              ("Stridewell", "Peakform", "Urbanstep", "Trailrun", "Solecraft", "Kinetica"),
              ("non slip", "water resistant", "arch support", "breathable mesh", "memory foam", "lightweight",
               "rubber sole", "machine washable"),
              {"size": ("6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "11", "12"), "color": _COLORS},
              (24.0, 140.0), ("upper", "midsole", "outsole", "heel counter")),
    _Category("shirts", ("Clothing, Shoes & Jewelry", "Shirts"),
              ("t-shirt", "polo shirt", "button down shirt", "henley shirt", "flannel shirt", "tank top"),
              ("Northloom", "Cottonfield", "Harbor & Pine", "Basicly", "Threadline", "Maple Row"),
              ("cotton blend", "wrinkle free", "moisture wicking", "slim fit", "relaxed fit", "tagless",
               "quick drying", "button closure"),
              {"size": ("small", "medium", "large", "x-large", "xx-large"), "color": _COLORS},
              (9.0, 65.0), ("collar", "cuffs", "seams", "fabric")),
    _Category("headphones", ("Electronics", "Headphones"),
              ("over-ear headphones", "earbuds", "on-ear headphones", "gaming headset", "sports earphones"),
              ("Sonaro", "Auralink", "Beatwave", "Quietude", "Decibel", "Echoform"),
              ("wireless", "noise cancelling", "long battery life", "built-in microphone", "sweat resistant",
               "fast charging", "foldable", "deep bass"),
              {"color": ("black", "white", "midnight blue", "rose gold", "silver", "forest green")},
              (15.0, 320.0), ("drivers", "ear cushions", "headband", "charging case")),
    _Category("coffee", ("Grocery & Gourmet Food", "Coffee"),
              ("whole bean coffee", "ground coffee", "coffee pods", "instant coffee", "cold brew concentrate"),
              ("Roastery Lane", "Highland Bean", "Morning Ritual", "Java Peak", "Kettle & Crow", "Bluefield"),
              ("organic", "fair trade", "dark roast", "medium roast", "decaf", "single origin", "kosher",
               "gluten free"),
              {"flavor": ("vanilla", "hazelnut", "caramel", "mocha", "french roast", "original blend"),
               "size": ("12 ounce", "16 ounce", "2 pound", "5 pound"),
               "pack": ("pack of 1", "pack of 2", "pack of 3", "pack of 6")},
              (6.0, 75.0), ("beans", "aroma", "finish", "cup")),
    _Category("skincare", ("Beauty & Personal Care", "Skin Care"),
              ("face moisturizer", "serum", "sunscreen lotion", "cleansing gel", "eye cream", "night cream"),
              ("Dermaleaf", "Pure Petal", "Glowlab", "Aloe Bay", "Verdant Skin", "Clearwell"),
              ("fragrance free", "paraben free", "cruelty free", "hyaluronic acid", "vitamin c",
               "for sensitive skin", "long lasting", "non greasy"),
              {"size": ("1 fl oz", "1.7 fl oz", "3.4 fl oz", "6.76 fl oz"),
               "scent": ("unscented", "lavender", "cucumber", "citrus", "rose")},
              (7.0, 95.0), ("formula", "texture", "ingredients", "absorption")),
    _Category("backpacks", ("Luggage & Travel Gear", "Backpacks"),
              ("hiking backpack", "laptop backpack", "school backpack", "travel backpack", "daypack"),
              ("Trailhaven", "Packwell", "Summitline", "Cityroam", "Ridgeway", "Canvas & Co"),
              ("water resistant", "padded laptop sleeve", "lightweight", "anti theft", "usb charging port",
               "ergonomic straps", "multiple compartments", "carry on approved"),
              {"color": _COLORS, "capacity": ("20 liters", "30 liters", "40 liters")},
              (19.0, 160.0), ("zippers", "straps", "back panel", "main compartment")),
    _Category("lamps", ("Home & Kitchen", "Lighting"),
              ("desk lamp", "floor lamp", "table lamp", "bedside lamp", "clip on lamp"),
              ("Luminest", "Brightfold", "Halcyon Home", "Glowmere", "Lanternly", "Oakshade"),
              ("dimmable", "led", "touch control", "energy efficient", "adjustable arm", "eye caring",
               "usb charging port", "easy assembly"),
              {"color": ("black", "white", "brass", "silver", "walnut"),
               "bulb": ("warm light", "daylight", "color changing")},
              (14.0, 180.0), ("base", "shade", "switch", "arm")),
    _Category("phone cases", ("Cell Phones & Accessories", "Cases"),
              ("phone case", "wallet case", "rugged case", "transparent case", "silicone case"),
              ("Armorly", "Caseform", "Shieldrite", "Pocketline", "Gripwell", "Slimguard"),
              ("shockproof", "slim fit", "wireless charging compatible", "card holder", "kickstand",
               "scratch resistant", "raised edges", "anti yellowing"),
              {"model": ("iphone 15", "galaxy s24", "pixel 8", "pixel 9"),
               "color": ("black", "clear", "navy blue", "lavender", "mint green", "red")},
              (8.0, 45.0), ("bumper", "back plate", "buttons", "camera cutout")),
    _Category("snacks", ("Grocery & Gourmet Food", "Snacks"),
              ("protein bars", "trail mix", "potato chips", "granola bites", "rice crackers"),
              ("Crunchwell", "Harvest Hill", "Nutty Grove", "Snackwise", "Prairie Kitchen", "Goodcrisp"),
              ("gluten free", "non gmo", "vegan", "low sugar", "high protein", "keto friendly", "kosher",
               "individually wrapped"),
              {"flavor": ("sea salt", "peanut butter", "chocolate chip", "barbecue", "honey almond",
                          "sour cream and onion"),
               "pack": ("pack of 6", "pack of 12", "pack of 24")},
              (5.0, 48.0), ("crunch", "ingredients", "texture", "pantry")),
    _Category("water bottles", ("Sports & Outdoors", "Hydration"),
              ("water bottle", "insulated tumbler", "sports bottle", "kids water bottle", "travel mug"),
              ("Hydrova", "Aquapeak", "Coldkeep", "Streamline", "Wellspring", "Glacierware"),
              ("bpa free", "leak proof", "dishwasher safe", "stainless steel", "double wall insulated",
               "straw lid", "lightweight", "sweat proof"),
              {"size": ("12 oz", "20 oz", "32 oz", "40 oz"),
               "color": ("black", "white", "seafoam", "coral", "slate", "lilac")},
              (9.0, 55.0), ("lid", "body", "finish", "handle")),
)

_SERIES = ("", "", "", "pro", "lite", "max", "plus", "air", "go", "classic", "essential", "ultra", "prime", "edge")
_OPENERS = (
    "Designed for everyday use, this {type} pairs a thoughtful {noun} with {a1} construction.",
    "A {type} from {brand} with a refined {noun}, made to be {a1} and {a2}.",
    "The {brand} {type} keeps things simple: {a1}, {a2}, and a {noun} that holds up to daily wear.",
    "Built around a durable {noun}, this {a1} {type} is an easy pick for home, work or travel.",
)


def _asin(rng: random.Random, taken: set[str]) -> str:
    while True:
        asin = "B0" + "".join(rng.choice(_ASIN_CHARS) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _product(rng: random.Random, cat: _Category, asin: str, titles: set[str]) -> Product:
    ptype = rng.choice(cat.types)
    brand = rng.choice(cat.brands)
    attributes = tuple(rng.sample(cat.attributes, rng.randint(3, 5)))
    options = {
        group: tuple(sorted(rng.sample(values, min(len(values), rng.randint(2, 5))), key=values.index))
        for group, values in cat.options.items()
        if rng.random() < 0.9 or len(cat.options) == 1
    } or {group: values[:3] for group, values in list(cat.options.items())[:1]}
    title = ""
    for attempt in range(50):
        series = rng.choice(_SERIES)
        shown = attributes[: 1 + (attempt + rng.randint(0, 1)) % 3]
        words = [brand, *(a.title() for a in shown), series.title(), ptype.title()]
        title = " ".join(w for w in words if w)
        if title not in titles:
            break
    else:
        title = f"{title} Edition {asin[-3:]}"
    titles.add(title)
    noun = rng.choice(cat.nouns)
    a1, a2 = attributes[0], attributes[1]
    description = rng.choice(_OPENERS).format(type=ptype, brand=brand, noun=noun, a1=a1, a2=a2)
    bullets = tuple(f"{a.capitalize()}: designed around the {rng.choice(cat.nouns)}." for a in attributes)
    lo, hi = cat.price
    price = round(rng.uniform(lo, hi), 2)
    return Product(
        asin=asin, title=title, brand=brand, category=cat.name, product_type=ptype,
        category_path=(*cat.path, ptype.title()), attributes=attributes, options=options, price=price,
        description=description, bullets=bullets, rating=round(rng.uniform(3.0, 5.0), 1),
    )


def build_catalog(seed: int = 0, size: int = 2400) -> list[Product]:
    """``size`` products spread round-robin over the categories, in a fixed order for a given seed."""
    rng = random.Random(seed)
    taken: set[str] = set()
    titles: set[str] = set()
    return [_product(rng, CATEGORIES[i % len(CATEGORIES)], _asin(rng, taken), titles) for i in range(size)]
