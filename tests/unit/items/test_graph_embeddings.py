"""TransE over the knowledge graph's triples: purchases and facts both shape where items land."""

import numpy as np
import pytest

from ml.graph_train import BOUGHT, GraphEmbeddings, TransEConfig, fit_transe, graph_triples
from ml.text_encoder import facts_of
from tools.synth.sessions import PURCHASE, shopper_events
from tools.synth.shop import catalog, make_shop
from tools.synth.shoppers import shopper
from tools.synth.writer import START

SEED = 5
SHOP = make_shop(200, SEED)
CATALOG = catalog(SHOP)
UNSOLD = 20  # the last items of the catalog are never bought: only their facts place them


@pytest.fixture(scope="module")
def purchases() -> tuple[np.ndarray, np.ndarray]:
    sold = set(SHOP.item_ids[:-UNSOLD].tolist())
    rows = [
        (event.user_id, event.item_id)
        for number in range(300)
        for event in shopper_events(SEED, shopper(SEED, number), SHOP, START, 30)
        if event.type == PURCHASE and event.item_id in sold
    ]
    return np.array([u for u, _ in rows]), np.array([i for _, i in rows])


@pytest.fixture(scope="module")
def embeddings(purchases) -> GraphEmbeddings:
    triples = graph_triples(SHOP.item_ids.tolist(), [facts_of(item) for item in CATALOG], *purchases)
    assert {"brand", "category", BOUGHT} <= set(triples.relations.tolist())
    return fit_transe(triples, TransEConfig(dim=16, epochs=30, batch_size=512, learning_rate=0.03))


def _cosine(vectors: np.ndarray, a: int, b: int) -> float:
    return float(vectors[a] @ vectors[b])


def test_items_bought_by_the_same_shoppers_sit_closer_than_random_pairs(embeddings, purchases) -> None:
    users, items = purchases
    vectors = embeddings.vectors_of([f"item:{item}" for item in SHOP.item_ids.tolist()])
    row = {item: n for n, item in enumerate(SHOP.item_ids.tolist())}
    baskets: dict[str, set[int]] = {}
    for user, item in zip(users.tolist(), items.tolist(), strict=True):
        baskets.setdefault(user, set()).add(row[item])
    together = [
        _cosine(vectors, a, b) for basket in baskets.values() for a in basket for b in basket if a < b
    ]
    rng = np.random.default_rng(0)
    sold = len(SHOP.item_ids) - UNSOLD
    random_pairs = [_cosine(vectors, *rng.choice(sold, 2, replace=False)) for _ in range(2000)]
    assert np.mean(together) > np.mean(random_pairs) + 0.1, (np.mean(together), np.mean(random_pairs))


def test_an_unsold_item_lands_near_items_that_share_its_facts(embeddings) -> None:
    vectors = embeddings.vectors_of([f"item:{item}" for item in SHOP.item_ids.tolist()])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # unit length, as in the paper
    sold = len(SHOP.item_ids) - UNSOLD
    closer = []
    for new in range(sold, len(SHOP.item_ids)):
        siblings = [n for n in range(sold) if SHOP.category_paths[n] == SHOP.category_paths[new]]
        others = [n for n in range(sold) if SHOP.category_paths[n][0] != SHOP.category_paths[new][0]]
        if siblings and others:
            closer.append(
                np.mean([_cosine(vectors, new, n) for n in siblings])
                > np.mean([_cosine(vectors, new, n) for n in others])
            )
    assert len(closer) >= 10 and np.mean(closer) >= 0.9, closer


def test_the_artifact_round_trips_and_unknown_entities_get_zeros(embeddings, tmp_path) -> None:
    embeddings.save(tmp_path)
    loaded = GraphEmbeddings.load(tmp_path)
    assert np.array_equal(loaded.vectors, embeddings.vectors)
    assert np.array_equal(loaded.relations, embeddings.relations)
    found = loaded.vectors_of([f"item:{SHOP.item_ids[0]}", "item:nope"])
    assert np.linalg.norm(found[0]) > 0.99 and not found[1].any()
    with pytest.raises(ValueError, match="at least two triples"):
        fit_transe(graph_triples([], [], np.array([], str), np.array([], str)))
