"""The simulator's own answer: how well could any model do on a simulated shop?

A simulated shopper views, clicks and buys each priced item with probabilities that all rise
with one number, the shopper's affinity for it (tools.synth.shoppers). Ranking the items a shopper
has not bought by that affinity is therefore the best order any model could learn from the
shopper's data. Its NDCG is the regime's ceiling: a regime where even the truth barely beats
most popular cannot tell a good pipeline from a bestseller list.
"""

from __future__ import annotations

import time

import numpy as np

from tools.evaluation.protocols import Split
from tools.evaluation.report import ModelResult
from tools.evaluation.run import CURVE_KS, score
from tools.synth.shop import Shop
from tools.synth.shoppers import affinity, shopper

TRUTH_NAME = "simulator's truth (each shopper's items by true affinity; the ceiling)"


def truth_rankings(split: Split, shop: Shop, seed: int, count: int = max(CURVE_KS)) -> dict[int, list[int]]:
    """Each test shopper's priced, not yet bought items of the training part, by true affinity."""
    column = {item: row for row, item in enumerate(shop.item_ids.tolist())}
    rows = np.array([column[item] for item in split.item_ids.tolist()])
    priced = shop.prices[rows] > 0
    rankings: dict[int, list[int]] = {}
    for user in split.test:
        person = shopper(seed, int(str(split.user_ids[user]).removeprefix("U")))
        liking = np.where(priced, affinity(person, shop, rows), -np.inf)
        liking[split.train[user].indices] = -np.inf
        rankings[user] = np.argsort(-liking, kind="stable")[:count].tolist()
    return rankings


def truth_result(split: Split, shop: Shop, seed: int) -> ModelResult:
    """`truth_rankings` scored like every other row."""
    started = time.perf_counter()
    rankings = truth_rankings(split, shop, seed)
    return score(TRUTH_NAME, rankings, split, {}, time.perf_counter() - started)
