"""Candidates service over real gRPC: item-kNN and popular items from the items service, fused."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest

from ml.artifacts import CANDIDATE_ORDER, COOCCURRENCE, POPULARITY, SERVING, ServingConfig
from ml.cooccurrence import fit_cooccurrence
from ml.popularity import fit_popularity
from ml.text_encoder import ITEM_EMBEDDINGS
from recsys.candidates.v1 import candidates_pb2, candidates_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2, items_pb2_grpc
from services.candidates.app import build as build_candidates
from services.items.app import build as build_items
from shared import sources
from shared.models import publish
from tests.support import ServerThread, make_settings, purchases_snapshot, suite_env
from tests.unit.candidates.test_training_and_retrieval import BASKETS
from tools.cli.supervisor import free_port


@pytest.fixture
def settings(tmp_path: Path):
    settings = make_settings(str(tmp_path), **suite_env())
    snapshot = purchases_snapshot(BASKETS)
    publish(settings.model_dir, COOCCURRENCE, fit_cooccurrence(snapshot).save)
    publish(settings.model_dir, POPULARITY, fit_popularity(snapshot).save)
    return settings


def generate(server: ServerThread, **fields) -> candidates_pb2.GenerateResponse:
    with grpc.insecure_channel(server.address) as channel:
        return candidates_pb2_grpc.CandidatesServiceStub(channel).Generate(
            candidates_pb2.GenerateRequest(user_id="u", **fields), timeout=5
        )


def test_item_knn_and_popular_are_fused_without_excluded_items(settings) -> None:
    items = ServerThread(build_items, settings, settings.ports["items"])
    candidates = ServerThread(build_candidates, settings, settings.ports["candidates"])
    try:
        response = generate(candidates, history_item_ids=["mug"], exclude_item_ids=["tea"], count=5)
        with pytest.raises(grpc.RpcError) as raised:
            generate(candidates, count=5000)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        candidates.stop()
        items.stop()
    found = {c.item_id: c for c in response.candidates}
    # cake and milk are co-bought with mug (item-kNN) and popular too: both sources agree on them
    assert [c.item_id for c in response.candidates[:2]] == ["cake", "milk"]
    assert found["cake"].anchor_item_id == found["milk"].anchor_item_id == "mug"
    assert set(found) == {"cake", "milk", "beer", "crisps", "mug"}  # tea is excluded
    assert sum(dict(response.source_counts).values()) == 5
    fusion = [c.fusion_score for c in response.candidates]
    assert fusion == sorted(fusion, reverse=True)
    assert {v.name for v in response.model_versions} == {COOCCURRENCE, POPULARITY}


def test_an_unreachable_catalog_leaves_the_in_process_sources_and_says_so(settings) -> None:
    env = {"RECSYS_ITEMS_ADDR": f"127.0.0.1:{free_port()}", "RECSYS_STAGE_DEADLINE_MS": "300"}
    broken = make_settings(str(settings.home), **env)
    candidates = ServerThread(build_candidates, broken)
    try:
        response = generate(candidates, history_item_ids=["beer"], count=5)
    finally:
        candidates.stop()
    found_by = {c.item_id: {p.source for p in c.found_by} for c in response.candidates}
    # item-kNN's co-buys, and the popular items this process loads itself, fill the list
    assert {item for item, by in found_by.items() if "item-knn" in by} == {"crisps", "tea"}
    assert {source for by in found_by.values() for source in by} == {"item-knn", "popular"}
    assert len(found_by) == 5
    assert {c.anchor_item_id for c in response.candidates if c.item_id in ("crisps", "tea")} == {"beer"}
    # the catalog answers for the text and graph neighbours and the availability check: each is named
    assert list(response.degraded_sources) == ["item-text", "knowledge-graph", "availability"]


@contextmanager
def hung_catalog(port: int) -> Iterator[None]:
    """A catalog that takes every call and answers none within a request's time (a stopped process
    keeps its connections open the same way)."""
    release = threading.Event()

    def hang(request: bytes, context: grpc.ServicerContext) -> bytes:
        release.wait(10)
        return b""

    methods = ("SimilarItems", "RelatedToItems", "ListUnavailable", "Popular")
    server = grpc.server(ThreadPoolExecutor(max_workers=len(methods) * 4))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "recsys.items.v1.ItemsService",
                {name: grpc.unary_unary_rpc_method_handler(hang) for name in methods},
            ),
        )
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield
    finally:
        release.set()
        server.stop(0)


def test_a_hung_catalog_costs_its_sources_not_the_callers_deadline(settings) -> None:
    # Each call to the catalog could wait its own default of 2 s; the caller leaves 0.4 s.
    slow = make_settings(str(settings.home), **{**suite_env(), "RECSYS_STAGE_DEADLINE_MS": "2000"})
    with hung_catalog(slow.ports["items"]):
        candidates = ServerThread(build_candidates, slow, slow.ports["candidates"])
        try:
            with grpc.insecure_channel(candidates.address) as channel:
                started = time.monotonic()
                response = candidates_pb2_grpc.CandidatesServiceStub(channel).Generate(
                    candidates_pb2.GenerateRequest(user_id="u", history_item_ids=["beer"], count=5),
                    timeout=0.4,
                )
                took = time.monotonic() - started
        finally:
            candidates.stop()
    assert took < 0.4
    # the in-process sources answer; each source behind the catalog is named as degraded
    assert {p.source for c in response.candidates for p in c.found_by} == {"item-knn", "popular"}
    assert list(response.degraded_sources) == ["item-text", "knowledge-graph", "availability"]


def test_hidden_and_out_of_stock_items_are_never_candidates(settings) -> None:
    items = ServerThread(build_items, settings, settings.ports["items"])
    candidates = ServerThread(build_candidates, settings, settings.ports["candidates"])
    catalog = [
        common_pb2.Item(item_id=item_id, title=item_id.title(), price=2.0, **flags)
        for item_id, flags in (
            ("cake", {"hidden": True}),
            ("milk", {"stock_status": common_pb2.STOCK_STATUS_OUT_OF_STOCK}),
            ("beer", {"stock_status": common_pb2.STOCK_STATUS_IN_STOCK}),
            ("crisps", {}),
            ("mug", {}),
            ("tea", {}),
        )
    ]
    try:
        with grpc.insecure_channel(items.address) as channel:
            items_pb2_grpc.ItemsServiceStub(channel).UpsertItems(
                iter([items_pb2.UpsertItemsRequest(items=catalog)]), timeout=10
            )
        response = generate(candidates, history_item_ids=["mug"], count=10)
    finally:
        candidates.stop()
        items.stop()
    assert {c.item_id for c in response.candidates} == {"beer", "crisps", "mug", "tea"}
    assert list(response.degraded_sources) == []


@contextmanager
def catalog_and_candidates(settings, catalog: list[common_pb2.Item]) -> Iterator[ServerThread]:
    """The items service holding `catalog`, and the candidates service asking it."""
    items = ServerThread(build_items, settings, settings.ports["items"])
    candidates = ServerThread(build_candidates, settings, settings.ports["candidates"])
    try:
        with grpc.insecure_channel(settings.addresses["items"]) as channel:
            items_pb2_grpc.ItemsServiceStub(channel).UpsertItems(
                iter([items_pb2.UpsertItemsRequest(items=catalog)]), timeout=10
            )
        yield candidates
    finally:
        candidates.stop()
        items.stop()


def test_item_text_finds_a_never_bought_item_described_like_the_shoppers(settings) -> None:
    from ml.text_train import TextEncoderConfig, fit_text_encoder  # loads TensorFlow

    titles = {
        "tea": "green tea leaves",
        "mug": "red spotty mug",
        "milk": "whole milk bottle",
        "cake": "lemon drizzle cake",
        "beer": "pale ale beer",
        "crisps": "salted potato crisps",
    }
    catalog = [common_pb2.Item(item_id=i, title=t, price=2.0) for i, t in titles.items()]
    catalog.append(common_pb2.Item(item_id="mug-new", title="red spotty mug large", price=3.0))
    users = [user for user, basket in BASKETS.items() for _ in basket]
    bought = [item for basket in BASKETS.values() for item in basket]
    encoder = fit_text_encoder(
        np.array([item.item_id for item in catalog]),
        [item.title for item in catalog],
        np.array(users),
        np.array(bought),
        TextEncoderConfig(epochs=2, batch_size=4),
    )
    with catalog_and_candidates(settings, catalog) as candidates:
        before = generate(candidates, history_item_ids=["mug"], count=20)
        assert sources.ITEM_TEXT not in dict(before.source_counts)  # no encoder yet: not a failure
        assert list(before.degraded_sources) == []
        version = publish(settings.model_dir, ITEM_EMBEDDINGS, encoder.save)
        for _ in range(100):
            response = generate(candidates, history_item_ids=["mug"], count=20)
            if any(v.name == ITEM_EMBEDDINGS and v.version == version for v in response.model_versions):
                break
            time.sleep(0.05)
    found = {c.item_id: c for c in response.candidates}
    assert "mug-new" in found  # nobody bought it: only its words could find it
    placements = {p.source: p for p in found["mug-new"].found_by}
    assert sources.ITEM_TEXT in placements and placements[sources.ITEM_TEXT].rank == 0
    assert found["mug-new"].source == sources.ITEM_TEXT and found["mug-new"].anchor_item_id == "mug"


def test_the_knowledge_graph_source_links_recent_items_through_real_facts(settings) -> None:
    catalog = [
        common_pb2.Item(item_id="mug", title="Mug", brand="Acme", category_path=["Home", "Kitchen"]),
        common_pb2.Item(item_id="jug", title="Jug", brand="Acme", category_path=["Home", "Kitchen"]),
        common_pb2.Item(item_id="lamp", title="Lamp", brand="Lumo", category_path=["Home", "Lighting"]),
        common_pb2.Item(
            item_id="recipe",
            title="Ten mug cakes",
            category_path=["Home", "Kitchen"],
            domain=common_pb2.DOMAIN_CONTENT,
            kind="article",
        ),
    ]
    with catalog_and_candidates(settings, catalog) as candidates:
        response = generate(candidates, history_item_ids=["mug", "unknown-item"], count=20)
    linked = {
        c.item_id: c
        for c in response.candidates
        if any(p.source == sources.KNOWLEDGE_GRAPH for p in c.found_by)
    }
    assert set(linked) == {"jug", "lamp", "recipe"}  # the unknown seed links nowhere and fails nothing
    assert list(response.degraded_sources) == []
    by_id = {item.item_id: item for item in catalog}
    for item_id, candidate in linked.items():
        # no other source knows these items (none was ever bought), so the graph is credited
        assert candidate.source == sources.KNOWLEDGE_GRAPH and candidate.anchor_item_id == "mug"
        for link in candidate.graph_path:  # every fact is held by both items
            for holder in (by_id[item_id], by_id["mug"]):
                held = {("brand", holder.brand)} | {
                    ("category", ">".join(holder.category_path[: n + 1]))
                    for n in range(len(holder.category_path))
                }
                assert (link.relation, link.value) in held
    # the rarest shared fact comes first; the article is linked across domains by its category
    if linked["jug"].source == sources.KNOWLEDGE_GRAPH:
        assert (linked["jug"].graph_path[0].relation, linked["jug"].graph_path[0].value) == ("brand", "Acme")
    if linked["recipe"].source == sources.KNOWLEDGE_GRAPH:
        assert ("category", "Home>Kitchen") in {
            (link.relation, link.value) for link in linked["recipe"].graph_path
        }


ONLY_ITEM_KNN = ",".join(f"{source}={int(source == sources.ITEM_KNN)}" for source in sources.ALL)


def test_the_fusion_chosen_in_training_orders_the_candidates_unless_the_operator_set_one(settings) -> None:
    chosen = ServingConfig({sources.POPULAR: 1.0}, {}, CANDIDATE_ORDER)
    version = publish(settings.model_dir, SERVING, chosen.save)
    items = ServerThread(build_items, settings, settings.ports["items"])
    try:
        candidates = ServerThread(build_candidates, settings, settings.ports["candidates"])
        try:
            served = generate(candidates, history_item_ids=["mug"], exclude_item_ids=["mug"], count=5)
        finally:
            candidates.stop()
        ports = {name: value for name, value in settings.env.items() if "METRICS" not in name}
        fixed = make_settings(str(settings.home), **{**ports, "RECSYS_CANDIDATES_WEIGHTS": ONLY_ITEM_KNN})
        operator = ServerThread(build_candidates, fixed)
        try:
            overridden = generate(operator, history_item_ids=["mug"], exclude_item_ids=["mug"], count=5)
        finally:
            operator.stop()
        popular = items_pb2_grpc.ItemsServiceStub(grpc.insecure_channel(items.address)).Popular(
            items_pb2.PopularRequest(count=5, exclude_item_ids=["mug"]), timeout=5
        )
    finally:
        items.stop()
    assert [c.item_id for c in served.candidates] == [i.item_id for i in popular.items]
    assert (SERVING, version) in {(v.name, v.version) for v in served.model_versions}
    assert all(any(p.source == sources.POPULAR for p in c.found_by) for c in served.candidates)
    knn_first = [c for c in overridden.candidates if c.fusion_score > 0]
    assert all(any(p.source == sources.ITEM_KNN for p in c.found_by) for c in knn_first)
    assert SERVING not in {v.name for v in overridden.model_versions}


def test_the_recency_decays_chosen_in_training_weigh_the_latest_items_even_under_the_operators_fusion(
    settings,
) -> None:
    """Flat, mug's and milk's neighbour tea leads (the unit tests show it); at the published decay
    the latest item's neighbour crisps leads, whoever set the fusion."""
    chosen = ServingConfig(
        {sources.ITEM_KNN: 1.0}, {}, CANDIDATE_ORDER, recency_decays={sources.ITEM_KNN: 0.1}
    )
    publish(settings.model_dir, SERVING, chosen.save)
    history = ["beer", "milk", "mug"]
    ports = {name: value for name, value in settings.env.items() if "METRICS" not in name}
    fixed = make_settings(str(settings.home), **{**ports, "RECSYS_CANDIDATES_WEIGHTS": ONLY_ITEM_KNN})
    items = ServerThread(build_items, settings, settings.ports["items"])
    try:
        firsts = []
        for config in (settings, fixed):
            candidates = ServerThread(build_candidates, config)
            try:
                found = generate(candidates, history_item_ids=history, exclude_item_ids=history, count=3)
            finally:
                candidates.stop()
            firsts.append((found.candidates[0].item_id, found.candidates[0].anchor_item_id))
    finally:
        items.stop()
    assert firsts == [("crisps", "beer"), ("crisps", "beer")]
