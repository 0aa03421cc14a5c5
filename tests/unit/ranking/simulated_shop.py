"""Simulated shoppers' clicks and purchases over time, as a snapshot with a real catalog."""

import numpy as np

from ml.snapshot import PURCHASE, Snapshot
from tools.synth.sessions import CLICK, shopper_events
from tools.synth.sessions import PURCHASE as SYNTH_PURCHASE
from tools.synth.shop import REGIMES, make_shop
from tools.synth.shoppers import shopper
from tools.synth.writer import START


def simulated_snapshot(
    shoppers: int, items: int, days: int, seed: int = 5, regime: str = "default"
) -> Snapshot:
    """Every click or purchase as an interaction (the simulator buys rarely), in time order."""
    shop = make_shop(items, seed, REGIMES[regime])
    rows = [
        (event.user_id, event.item_id, event.timestamp)
        for number in range(shoppers)
        for event in shopper_events(seed, shopper(seed, number), shop, START, days)
        if event.type in (CLICK, SYNTH_PURCHASE)
    ]
    rows.sort(key=lambda row: row[2])
    users, item_ids, times = (np.array(column) for column in zip(*rows, strict=True))
    return Snapshot(
        folder=None,  # type: ignore[arg-type]
        user_ids=users.astype(str),
        item_ids=item_ids.astype(str),
        types=np.full(len(users), PURCHASE, dtype=np.int8),
        timestamps=times.astype(np.float64),
        quantities=np.ones(len(users), dtype=np.int32),
        catalog_item_ids=shop.item_ids.astype(str),
        catalog_titles=np.array(shop.titles, dtype=str),
        catalog_categories=np.array([">".join(path) for path in shop.category_paths], dtype=str),
        catalog_prices=shop.prices.astype(np.float64),
        catalog_price_scaled=np.zeros(len(shop)),
    )
