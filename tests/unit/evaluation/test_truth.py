"""The simulator's truth row: the ceiling a simulated protocol reports beside its baselines."""

import numpy as np

from ml.baselines import MostPopular
from tools.evaluation.offline import rank
from tools.evaluation.protocols import Interactions, time_cut
from tools.evaluation.run import score
from tools.evaluation.truth import truth_rankings, truth_result
from tools.synth.sessions import PURCHASE, shopper_events
from tools.synth.shop import REGIMES, make_shop
from tools.synth.shoppers import affinity, shopper
from tools.synth.writer import START

SEED = 3


def _purchases(regime: str) -> tuple[Interactions, object]:
    shop = make_shop(300, SEED, REGIMES[regime])
    rows = [
        (event.user_id, event.item_id, event.timestamp)
        for number in range(300)
        for event in shopper_events(SEED, shopper(SEED, number), shop, START, 60)
        if event.type == PURCHASE
    ]
    rows.sort(key=lambda row: row[2])
    users, items, moments = zip(*rows, strict=True)
    times = np.array([np.datetime64(int(m), "s").astype(str).replace("T", " ") for m in moments])
    return Interactions(np.array(users), np.array(items), times), shop


def test_the_truth_ranks_unbought_priced_items_by_true_affinity_and_beats_most_popular() -> None:
    data, shop = _purchases("taste")
    split = time_cut(data)
    truth = truth_result(split, shop, SEED)
    popular = score("most popular", rank(MostPopular().fit(split.train), split, 50), split, {}, 0.0)
    assert truth.at_k[20]["ndcg"] > 2 * popular.at_k[20]["ndcg"]

    user = next(iter(split.test))
    columns = {item: row for row, item in enumerate(shop.item_ids.tolist())}
    rows = np.array([columns[item] for item in split.item_ids.tolist()])
    liking = affinity(shopper(SEED, int(split.user_ids[user][1:])), shop, rows)
    allowed = (shop.prices[rows] > 0) & ~np.isin(np.arange(len(rows)), split.train[user].indices)
    expected = np.flatnonzero(allowed)[np.argsort(-liking[allowed], kind="stable")][:20]
    assert truth_rankings(split, shop, SEED, 20)[user] == expected.tolist()
