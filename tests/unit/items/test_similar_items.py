"""The item text encoder, its faiss index and SimilarItems over real gRPC, on simulator data."""

import time

import grpc
import numpy as np
import pytest

from ml.similar import ItemIndex
from ml.text_encoder import ITEM_EMBEDDINGS, ItemEmbeddings, item_text
from ml.text_train import TextEncoderConfig, copurchase_pairs, fit_text_encoder
from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2
from shared.models import publish
from tools.synth.sessions import CLICK, PURCHASE, shopper_events
from tools.synth.shop import catalog, make_shop
from tools.synth.shoppers import shopper
from tools.synth.writer import START

SEED = 3
SHOP = make_shop(300, SEED)
CATALOG = catalog(SHOP)


@pytest.fixture(scope="module")
def embeddings() -> ItemEmbeddings:
    """A small encoder trained on simulated shoppers' clicks and purchases, in time order."""
    rows = [
        (event.timestamp, event.user_id, event.item_id)
        for number in range(300)
        for event in shopper_events(SEED, shopper(SEED, number), SHOP, START, 30)
        if event.type in (CLICK, PURCHASE)
    ]
    rows.sort()
    users = np.array([user for _, user, _ in rows])
    items = np.array([item for _, _, item in rows])
    return fit_text_encoder(
        SHOP.item_ids,
        [item_text(item) for item in CATALOG],
        users,
        items,
        TextEncoderConfig(epochs=4, batch_size=128, max_pairs=20_000),
    )


def upsert(stub, items: list[common_pb2.Item]) -> None:
    stub.UpsertItems(iter([items_pb2.UpsertItemsRequest(items=items)]), timeout=30)


def similar(stub, seeds: list[str], count: int = 5, **fields) -> items_pb2.SimilarItemsResponse:
    return stub.SimilarItems(items_pb2.SimilarItemsRequest(item_ids=seeds, count=count, **fields), timeout=10)


def wait_for_model(stub, seed: str, version: int) -> None:
    for _ in range(200):
        try:
            if similar(stub, [seed]).model_version.version == version:
                return
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        time.sleep(0.05)
    raise AssertionError("the items service never loaded the published encoder")


def test_copurchase_pairs_follow_each_shoppers_distinct_items_in_order() -> None:
    users = np.array(["u", "u", "v", "u", "u", "v"])
    items = np.array([1, 2, 7, 1, 3, 8])
    first, second = copurchase_pairs(users, items, window=1)
    assert sorted(zip(first.tolist(), second.tolist(), strict=True)) == [(1, 2), (2, 3), (7, 8)]


def test_the_numpy_encoder_gives_the_keras_vectors(embeddings: ItemEmbeddings) -> None:
    again = embeddings.encode([item_text(item) for item in CATALOG])
    np.testing.assert_allclose(again, embeddings.vectors, atol=1e-5)
    assert np.allclose(np.linalg.norm(again, axis=1), 1.0, atol=1e-5)


def test_similar_items_share_category_and_brand(items, embeddings: ItemEmbeddings) -> None:
    stub, settings = items
    upsert(stub, CATALOG)
    version = publish(settings.model_dir, ITEM_EMBEDDINGS, embeddings.save)
    products = [n for n in range(len(SHOP)) if SHOP.domains[n] == "product"]
    wait_for_model(stub, SHOP.item_ids[products[0]], version)
    same_category, twin_found = [], []
    for n in products:
        answer = similar(stub, [str(SHOP.item_ids[n])], count=5)
        found = [int(item.item_id[1:]) for item in answer.items]
        assert len(found) == 5 and n not in found
        scores = [item.score for item in answer.items]
        assert scores == sorted(scores, reverse=True)
        same_category += [SHOP.category_paths[m] == SHOP.category_paths[n] for m in found]
        twins = {
            m
            for m in products
            if m != n
            and SHOP.brands[m] == SHOP.brands[n]
            and SHOP.category_paths[m] == SHOP.category_paths[n]
        }
        if twins:
            twin_found.append(bool(twins & set(found)))
    # by chance: about 1 in 30 neighbours shares the category, and a twin is in the top 5 of 299
    # items about 2% of the time
    assert np.mean(same_category) > 0.8, f"{np.mean(same_category):.2f} of neighbours share the category"
    assert len(twin_found) > 50
    assert np.mean(twin_found) > 0.8, (
        f"a same-brand, same-category item ranks top 5 for {np.mean(twin_found):.2f}"
    )


def test_a_new_item_is_findable_at_once_and_a_hidden_one_never(items, embeddings: ItemEmbeddings) -> None:
    stub, settings = items
    upsert(stub, CATALOG)
    version = publish(settings.model_dir, ITEM_EMBEDDINGS, embeddings.save)
    seed = CATALOG[0]
    wait_for_model(stub, seed.item_id, version)
    twin = common_pb2.Item()
    twin.CopyFrom(seed)
    twin.item_id = "NEW-TWIN"  # never bought, same words
    upsert(stub, [twin])
    assert similar(stub, [seed.item_id], count=3).items[0].item_id == "NEW-TWIN"
    twin.hidden = True
    upsert(stub, [twin])
    assert "NEW-TWIN" not in {item.item_id for item in similar(stub, [seed.item_id], count=50).items}
    with pytest.raises(grpc.RpcError) as hidden_seed:
        similar(stub, ["NEW-TWIN"])
    assert hidden_seed.value.code() == grpc.StatusCode.NOT_FOUND


def test_similar_items_refuses_bad_requests_with_clear_statuses(items, embeddings: ItemEmbeddings) -> None:
    stub, settings = items
    upsert(stub, CATALOG[:20])
    with pytest.raises(grpc.RpcError) as untrained:
        similar(stub, [CATALOG[0].item_id])
    assert untrained.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "recsys train items-text" in untrained.value.details()
    version = publish(settings.model_dir, ITEM_EMBEDDINGS, embeddings.save)
    wait_for_model(stub, CATALOG[0].item_id, version)
    bad = [
        ({"seeds": []}, "item_ids"),
        ({"seeds": ["x"] * 101}, "item_ids"),
        ({"seeds": [CATALOG[0].item_id], "count": 501}, "count"),
        ({"seeds": [CATALOG[0].item_id], "weights": [1.0, 2.0]}, "weights"),
    ]
    for fields, word in bad:
        seeds = fields.pop("seeds")
        with pytest.raises(grpc.RpcError) as refused:
            similar(stub, seeds, **fields)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and word in refused.value.details()
    with pytest.raises(grpc.RpcError) as unknown:
        similar(stub, ["nobody-sells-this"])
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_index_stays_correct_and_compact_under_repeated_updates(embeddings: ItemEmbeddings) -> None:
    index = ItemIndex.build(embeddings, [CATALOG])
    for _ in range(5):
        index.upsert(CATALOG[:100])
    assert len(index) == len(CATALOG)
    assert len(index._owners) < 1.5 * len(CATALOG)  # tombstones were compacted
    seed = CATALOG[7]
    vector = index.vectors_of([seed.item_id])[seed.item_id]
    exact = np.argsort(-(embeddings.embed(CATALOG) @ vector))[1:6]
    found = index.similar(vector[None, :], np.ones(1), 5, {seed.item_id})
    assert len(set(SHOP.item_ids[exact].tolist()) & {item for item, _, _ in found}) >= 4
