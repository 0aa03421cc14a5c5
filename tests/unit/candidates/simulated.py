"""Simulated shoppers as a user x item matrix, and that matrix as a training snapshot."""

import dataclasses

import numpy as np

from tests.support import purchases_snapshot
from tools.synth.sessions import CLICK, PURCHASE, shopper_events
from tools.synth.shop import make_shop
from tools.synth.shoppers import shopper
from tools.synth.writer import START


def simulated(shoppers: int, items: int, seed: int = 5) -> tuple[list[str], list[str], np.ndarray]:
    """Users, items and the clicked-or-bought matrix of simulated shoppers."""
    shop = make_shop(items, seed)
    item_ids = [str(i) for i in shop.item_ids]
    position = {item: i for i, item in enumerate(item_ids)}
    users, rows = [], []
    for number in range(shoppers):
        person = shopper(seed, number)
        row = np.zeros(items, np.float32)
        for event in shopper_events(seed, person, shop, START, 30):
            if event.type in (CLICK, PURCHASE):
                row[position[event.item_id]] = 1.0
        if row.any():
            users.append(person.user_id)
            rows.append(row)
    return users, item_ids, np.array(rows)


def snapshot_of(users: list[str], items: list[str], matrix: np.ndarray, seed: int = 0):
    """The matrix as purchases at random times (the matrix itself has no time)."""
    snapshot = purchases_snapshot(
        {
            user: [items[i] for i in np.flatnonzero(matrix[u])]
            for u, user in enumerate(users)
            if matrix[u].any()
        }
    )
    times = np.random.default_rng(seed).permutation(snapshot.event_count).astype(np.float64)
    return dataclasses.replace(snapshot, timestamps=times)


def hold_out(matrix: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Moves a random `share` of each shopper's items (shoppers with 2+ items) to a held-out matrix."""
    rng = np.random.default_rng(seed)
    kept, held = matrix.copy(), np.zeros_like(matrix)
    for user in range(matrix.shape[0]):
        owned = np.flatnonzero(matrix[user])
        if len(owned) < 2:
            continue
        chosen = rng.choice(owned, size=max(1, round(share * len(owned))), replace=False)
        kept[user, chosen], held[user, chosen] = 0.0, 1.0
    return kept, held
