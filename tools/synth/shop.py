"""A seeded synthetic shop: category tree, brands, and items in three domains.

Every item has a latent taste vector (its category's centre plus noise), so the
shopper model can say how much any shopper likes any item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.common.v1 import common_pb2

TASTE_DIM = 8
CATEGORIES = {
    "Home": ["Kitchen", "Lighting", "Storage", "Textiles", "Decor"],
    "Garden": ["Plants", "Tools", "Furniture", "Lights", "Pots"],
    "Fashion": ["Bags", "Scarves", "Jewellery", "Hats", "Socks"],
    "Kids": ["Toys", "Games", "Books", "Party", "Crafts"],
    "Stationery": ["Notebooks", "Cards", "Pens", "Wrapping", "Calendars"],
    "Kitchen": ["Baking", "Tea", "Tins", "Cutlery", "Lunch"],
}
ADJECTIVES = [
    "Vintage",
    "Retro",
    "Classic",
    "Modern",
    "Rustic",
    "Bright",
    "Pastel",
    "Spotty",
    "Floral",
    "Woodland",
]
NOUNS = ["Set", "Holder", "Box", "Bag", "Kit", "Tin", "Frame", "Lantern", "Garland", "Mug", "Card", "Tray"]
DOMAINS = ("product", "content", "promotion")
DOMAIN_SHARES = (0.85, 0.10, 0.05)
KINDS = {"product": ("",), "content": ("article", "video"), "promotion": ("coupon", "activity")}


@dataclass(frozen=True)
class Regime:
    """How the shop's shoppers choose and when they come: the knobs that make simulated data sets
    differ in kind (the defaults are the simulator's usual shop)."""

    taste_weight: float = 1.0  # how much a shopper's own taste moves what they look at and buy
    popularity_weight: float = 0.3  # how much an item's popularity does
    popularity_shape: float = 1.2  # Pareto shape of item popularity: the smaller, the more skewed
    sessions_scale: float = 1.0  # multiplies each shopper's mean number of sessions
    burst_days: float | None = None  # all of a shopper's sessions fall within this many days


REGIMES = {
    "default": Regime(),
    # Strong popularity skew: a few items take a large share of the sales, and taste matters as usual.
    "popular": Regime(popularity_weight=1.0, popularity_shape=0.8, sessions_scale=5.0),
    # Bestsellers only: as "popular", but taste barely matters; even the shoppers' true affinities
    # beat most popular by only a few percent here (tools/evaluation/truth.py).
    "bestseller": Regime(taste_weight=0.3, popularity_weight=1.0, popularity_shape=0.8, sessions_scale=5.0),
    # A shop of specialists: each shopper's taste decides, popularity does not.
    "taste": Regime(taste_weight=2.0, popularity_weight=0.0, sessions_scale=5.0),
    # Shoppers who come once: every session of a shopper within a couple of hours.
    "bunched": Regime(sessions_scale=5.0, burst_days=0.1),
}


@dataclass(frozen=True)
class Shop:
    item_ids: np.ndarray
    titles: list[str]
    category_paths: list[tuple[str, str]]
    brands: list[str]
    prices: np.ndarray
    domains: list[str]
    kinds: list[str]
    vectors: np.ndarray
    popularity: np.ndarray
    regime: Regime = Regime()

    def __len__(self) -> int:
        return len(self.item_ids)


def make_shop(items: int, seed: int, regime: Regime = Regime()) -> Shop:
    rng = np.random.default_rng([seed, 1])
    leaves = [(top, leaf) for top, subs in CATEGORIES.items() for leaf in subs]
    centres = rng.normal(size=(len(leaves), TASTE_DIM))
    brand_names = [f"Brand{n:03d}" for n in range(max(10, items // 50))]
    leaf_of = rng.integers(len(leaves), size=items)
    domain_of = rng.choice(len(DOMAINS), size=items, p=DOMAIN_SHARES)
    vectors = centres[leaf_of] + 0.6 * rng.normal(size=(items, TASTE_DIM))
    base_price = np.exp(rng.normal(1.5, 0.6, size=len(leaves)))
    prices = np.round(base_price[leaf_of] * np.exp(rng.normal(0, 0.35, size=items)), 2)
    prices[domain_of != 0] = 0.0
    titles, kinds, brands = [], [], []
    for n in range(items):
        domain = DOMAINS[domain_of[n]]
        kind = KINDS[domain][n % len(KINDS[domain])]
        leaf = leaves[leaf_of[n]][1]
        words = f"{ADJECTIVES[n % len(ADJECTIVES)]} {leaf} {NOUNS[(n // 7) % len(NOUNS)]}"
        titles.append(f"{words} {kind.title()}".strip() if domain != "product" else words)
        kinds.append(kind)
        brands.append(brand_names[rng.integers(len(brand_names))] if domain == "product" else "")
    return Shop(
        item_ids=np.array([f"S{n:06d}" for n in range(items)]),
        titles=titles,
        category_paths=[leaves[i] for i in leaf_of],
        brands=brands,
        prices=prices,
        domains=[DOMAINS[d] for d in domain_of],
        kinds=kinds,
        vectors=vectors,
        popularity=rng.pareto(regime.popularity_shape, size=items) + 1.0,
        regime=regime,
    )


def catalog(shop: Shop) -> list[common_pb2.Item]:
    """The shop's items as the contract's Item messages."""
    domains = {
        "product": common_pb2.DOMAIN_PRODUCT,
        "content": common_pb2.DOMAIN_CONTENT,
        "promotion": common_pb2.DOMAIN_PROMOTION,
    }
    return [
        common_pb2.Item(
            item_id=str(shop.item_ids[n]),
            title=shop.titles[n],
            price=float(shop.prices[n]),
            category_path=list(shop.category_paths[n]),
            brand=shop.brands[n],
            domain=domains[shop.domains[n]],
            kind=shop.kinds[n],
            stock_status=common_pb2.STOCK_STATUS_IN_STOCK,
        )
        for n in range(len(shop))
    ]
