"""Related: the catalog's knowledge graph over real gRPC, on the simulated shop, SQLite and PostgreSQL."""

from pathlib import Path

import grpc
import pytest

from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2, items_pb2_grpc
from services.items.app import build
from services.items.graph import ItemGraph
from tests.support import ServerThread, make_settings
from tools.synth.shop import catalog, make_shop

CATALOG = catalog(make_shop(300, 8))
BY_ID = {item.item_id: item for item in CATALOG}


@pytest.fixture
def items(tmp_path: Path, database_url: str):
    settings = make_settings(str(tmp_path), RECSYS_ITEMS_DATABASE_URL=database_url)
    first = ServerThread(build, settings)
    with grpc.insecure_channel(first.address) as channel:
        items_pb2_grpc.ItemsServiceStub(channel).UpsertItems(
            iter([items_pb2.UpsertItemsRequest(items=CATALOG)]), timeout=30
        )
    first.stop()
    server = ServerThread(build, settings)  # a restart: the graph is rebuilt from the stored catalog
    channel = grpc.insecure_channel(server.address)
    yield items_pb2_grpc.ItemsServiceStub(channel)
    channel.close()
    server.stop()


def related(stub, item_id: str, count: int = 10, **fields) -> items_pb2.RelatedResponse:
    return stub.Related(items_pb2.RelatedRequest(item_id=item_id, count=count, **fields), timeout=10)


def holds(item: common_pb2.Item, link: common_pb2.GraphLink) -> bool:
    """Whether the catalog really gives the item this fact."""
    if link.relation == "brand":
        return item.brand == link.value
    if link.relation == "category":
        return ">".join(item.category_path).startswith(link.value) and link.value.count(">") < len(
            item.category_path
        )
    return link.relation == "attribute" and link.value in {f"{k}={v}" for k, v in item.attributes.items()}


def test_every_link_is_a_fact_both_items_hold_and_rare_facts_rank_first(items) -> None:
    products = [item for item in CATALOG if item.domain == common_pb2.DOMAIN_PRODUCT][:40]
    for item in products:
        answer = related(items, item.item_id)
        assert answer.items and item.item_id not in {n.item_id for n in answer.items}
        scores = [n.score for n in answer.items]
        assert scores == sorted(scores, reverse=True)
        for neighbour in answer.items:
            assert neighbour.path, "every neighbour comes with the facts that link it"
            for link in neighbour.path:
                assert holds(item, link) and holds(BY_ID[neighbour.item_id], link), (item.item_id, link)
        # the strongest neighbour shares the leaf category (the rarest category fact) or the brand
        best = BY_ID[answer.items[0].item_id]
        assert best.category_path == item.category_path or best.brand == item.brand


def test_a_domain_filter_links_products_to_content_and_promotions(items) -> None:
    product = next(
        item
        for item in CATALOG
        if item.domain == common_pb2.DOMAIN_PRODUCT
        and any(
            other.domain == common_pb2.DOMAIN_CONTENT and other.category_path == item.category_path
            for other in CATALOG
        )
    )
    answer = related(items, product.item_id, count=5, domain=common_pb2.DOMAIN_CONTENT)
    assert answer.items
    assert all(BY_ID[n.item_id].domain == common_pb2.DOMAIN_CONTENT for n in answer.items)
    assert BY_ID[answer.items[0].item_id].category_path == product.category_path
    assert answer.items[0].domain == common_pb2.DOMAIN_CONTENT


def test_upserts_and_hidden_items_change_the_graph_at_once(items) -> None:
    seed = next(item for item in CATALOG if item.brand)
    twin = common_pb2.Item(
        item_id="NEW", title="new", brand=seed.brand, category_path=list(seed.category_path), price=1.0
    )
    items.UpsertItems(iter([items_pb2.UpsertItemsRequest(items=[twin])]), timeout=10)
    assert related(items, seed.item_id, count=3).items[0].item_id == "NEW"
    twin.hidden = True
    items.UpsertItems(iter([items_pb2.UpsertItemsRequest(items=[twin])]), timeout=10)
    assert "NEW" not in {n.item_id for n in related(items, seed.item_id, count=300).items}
    assert "NEW" not in {
        n.item_id for n in related(items, seed.item_id, count=300, exclude_item_ids=["NEW"]).items
    }


def test_unknown_items_and_bad_counts_get_clear_statuses(items) -> None:
    with pytest.raises(grpc.RpcError) as unknown:
        related(items, "nobody-sells-this")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as too_many:
        related(items, CATALOG[0].item_id, count=501)
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_facts_shared_by_too_many_items_are_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = ItemGraph()
    crowd = [common_pb2.Item(item_id=f"i{n}", category_path=["Everything"]) for n in range(50)]
    graph.load([crowd])
    assert len(graph.related("i0", 10)) == 10
    monkeypatch.setattr("services.items.graph.MAX_WALKED_DEGREE", 20)
    assert graph.related("i0", 10) == []


def test_related_to_items_is_each_seeds_walk_merged_in_one_call(items) -> None:
    products = [item.item_id for item in CATALOG if item.domain == common_pb2.DOMAIN_PRODUCT]
    seeds, weights, unknown = products[:4], [1.0, 0.8, 0.64, 0.512], "not-in-the-catalog"
    answer = items.RelatedToItems(
        items_pb2.RelatedToItemsRequest(
            item_ids=[*seeds, unknown], weights=[*weights, 1.0], count=15, exclude_item_ids=products[10:12]
        ),
        timeout=10,
    )
    expected: dict[str, tuple[float, str]] = {}
    for seed, weight in zip(seeds, weights, strict=True):
        left_out = [*seeds, unknown, *products[10:12]]
        for n in related(items, seed, count=15, exclude_item_ids=left_out).items:
            if n.item_id not in expected or n.score * weight > expected[n.item_id][0]:
                expected[n.item_id] = (n.score * weight, seed)
    best = sorted(expected.items(), key=lambda pair: (-pair[1][0], pair[0]))[:15]
    assert [n.item_id for n in answer.items] == [item_id for item_id, _ in best]
    assert [n.anchor_item_id for n in answer.items] == [seed for _, (_, seed) in best]
    assert [n.score for n in answer.items] == pytest.approx([score for _, (score, _) in best])
    assert not {n.item_id for n in answer.items} & {*seeds, *products[10:12]}


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"item_ids": ["nowhere", "nothing"]}, grpc.StatusCode.NOT_FOUND),
        ({"item_ids": []}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"item_ids": ["a", "a"]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"item_ids": ["a", "b"], "weights": [1.0]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"item_ids": ["a"], "count": 501}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_related_to_items_refuses_what_it_cannot_answer(items, fields, code) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        items.RelatedToItems(items_pb2.RelatedToItemsRequest(**fields), timeout=10)
    assert refused.value.code() == code
