"""ItemsService RPCs."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import grpc
import numpy as np
from google.protobuf import field_mask_pb2

from ml.artifacts import POPULARITY, PopularityModel
from ml.similar import ItemIndex
from ml.text_encoder import ITEM_EMBEDDINGS
from recsys.common.v1 import common_pb2
from recsys.items.v1 import items_pb2, items_pb2_grpc
from services.items.cleaning import clean_items
from services.items.graph import ItemGraph, Neighbour
from services.items.store import ItemsStore
from shared.errors import FailedPrecondition, NotFound, require
from shared.limits import MAX_SEGMENT_LENGTH
from shared.models import ModelWatcher
from shared.payloads import payload
from shared.timestamps import checked_datetime

MAX_BATCH = 10_000
MAX_GET = 1000
DEFAULT_POPULAR = 100
MAX_POPULAR = 1000
T = TypeVar("T")

DEFAULT_EXPORT_BATCH = 5000
MAX_EXPORT_BATCH = 50_000
DEFAULT_UNAVAILABLE_BATCH = 50_000
MAX_UNAVAILABLE_BATCH = 100_000
MAX_SEEDS = 100
DEFAULT_SIMILAR = 20
MAX_SIMILAR = 500
# Item fields that a read mask copies by plain assignment (singular scalars and enums).
SCALAR_FIELDS = frozenset(
    f.name for f in common_pb2.Item.DESCRIPTOR.fields if f.message_type is None and not f.is_repeated
)


class ItemsServicer(items_pb2_grpc.ItemsServiceServicer):
    def __init__(
        self,
        store: ItemsStore,
        popularity: ModelWatcher[PopularityModel],
        similar: ModelWatcher[ItemIndex],
        graph: ItemGraph,
    ) -> None:
        self.store = store
        self.popularity = popularity
        self.similar = similar
        self.graph = graph

    async def UpsertItems(
        self,
        request_iterator: AsyncIterator[items_pb2.UpsertItemsRequest],
        context: grpc.aio.ServicerContext,
    ) -> items_pb2.UpsertItemsResponse:
        response = items_pb2.UpsertItemsResponse()
        fixes: Counter[str] = Counter()
        offset = 0
        async for batch in request_iterator:
            require(len(batch.items) <= MAX_BATCH, f"a batch holds at most {MAX_BATCH} items")
            cleaned = clean_items(batch.items)
            for index, item, reason in cleaned.dropped:
                response.rejected.add(event_id=item.item_id[:128], index=offset + index, reason=reason)
            dropped = [(item.item_id, reason, payload(item)) for _, item, reason in cleaned.dropped]
            result = await asyncio.to_thread(self.store.upsert, cleaned.accepted, dropped)
            if cleaned.accepted:
                await asyncio.to_thread(self.graph.upsert, cleaned.accepted)
            index = self.similar.model
            if index is not None and cleaned.accepted:
                await asyncio.to_thread(index.upsert, cleaned.accepted)
            fixes.update(cleaned.fixes)
            response.inserted += result.inserted
            response.updated += result.updated
            response.unchanged += result.unchanged
            offset += len(batch.items)
        for reason, count in sorted(fixes.items()):
            response.fixed.add(reason=reason, count=count)
        return response

    async def GetItems(
        self, request: items_pb2.GetItemsRequest, context: grpc.aio.ServicerContext
    ) -> items_pb2.GetItemsResponse:
        require(len(request.item_ids) <= MAX_GET, f"at most {MAX_GET} item_ids per call")
        mask = request.read_mask if request.read_mask.paths else None
        require(
            mask is None or mask.IsValidForDescriptor(common_pb2.Item.DESCRIPTOR),
            "read_mask names a field recsys.common.v1.Item does not have: "
            + ", ".join(request.read_mask.paths),
        )
        ids = list(dict.fromkeys(request.item_ids))
        found = await asyncio.to_thread(self.store.get, ids)
        items = [found[i] for i in ids if i in found]
        return items_pb2.GetItemsResponse(
            items=items if mask is None else [_masked(item, mask) for item in items],
            missing_item_ids=[i for i in ids if i not in found],
        )

    async def Popular(
        self, request: items_pb2.PopularRequest, context: grpc.aio.ServicerContext
    ) -> items_pb2.PopularResponse:
        require(0 <= request.count <= MAX_POPULAR, f"count must be between 0 and {MAX_POPULAR}")
        count = request.count or DEFAULT_POPULAR
        require(
            len(request.segment) <= MAX_SEGMENT_LENGTH,
            f"segment is longer than {MAX_SEGMENT_LENGTH} characters",
        )
        model, segment = self.popularity.model, ""
        if model is not None:
            model, segment = model.in_segment(request.segment)
        chosen = model.top(count, set(request.exclude_item_ids)) if model else []
        return items_pb2.PopularResponse(
            items=[items_pb2.PopularItem(item_id=i, score=s, buyers=b) for i, s, b in chosen],
            model_version=common_pb2.ModelVersion(name=POPULARITY, version=self.popularity.version),
            segment=segment,
        )

    async def SimilarItems(
        self, request: items_pb2.SimilarItemsRequest, context: grpc.aio.ServicerContext
    ) -> items_pb2.SimilarItemsResponse:
        require(
            1 <= len(request.item_ids) <= MAX_SEEDS, f"item_ids must hold between 1 and {MAX_SEEDS} items"
        )
        require(
            not request.weights or len(request.weights) == len(request.item_ids),
            "weights must be empty or one per item_id",
        )
        require(0 <= request.count <= MAX_SIMILAR, f"count must be between 0 and {MAX_SIMILAR}")
        index = self.similar.model
        if index is None:
            raise FailedPrecondition(f"no {ITEM_EMBEDDINGS} model yet: run `recsys train items-text`")
        found = index.vectors_of(request.item_ids)
        if not found:
            raise NotFound("none of the seed items is in the catalog (or all are hidden)")
        weights = dict(zip(request.item_ids, request.weights or [1.0] * len(request.item_ids), strict=True))
        seeds = list(found)
        chosen = await asyncio.to_thread(
            index.similar,
            np.stack([found[i] for i in seeds]),
            np.array([weights[i] for i in seeds]),
            request.count or DEFAULT_SIMILAR,
            set(request.item_ids) | set(request.exclude_item_ids),
        )
        return items_pb2.SimilarItemsResponse(
            items=[items_pb2.SimilarItem(item_id=i, score=s, anchor_item_id=seeds[a]) for i, s, a in chosen],
            model_version=common_pb2.ModelVersion(name=ITEM_EMBEDDINGS, version=self.similar.version),
        )

    async def Related(
        self, request: items_pb2.RelatedRequest, context: grpc.aio.ServicerContext
    ) -> items_pb2.RelatedResponse:
        require(0 <= request.count <= MAX_SIMILAR, f"count must be between 0 and {MAX_SIMILAR}")
        if request.item_id not in self.graph:
            raise NotFound(f"item {request.item_id!r} is not in the catalog (or is hidden)")
        found = await asyncio.to_thread(
            self.graph.related,
            request.item_id,
            request.count or DEFAULT_SIMILAR,
            request.domain,
            frozenset(request.exclude_item_ids),
        )
        return items_pb2.RelatedResponse(items=[_related_item(n) for n in found])

    async def RelatedToItems(
        self, request: items_pb2.RelatedToItemsRequest, context: grpc.aio.ServicerContext
    ) -> items_pb2.RelatedToItemsResponse:
        require(
            1 <= len(request.item_ids) <= MAX_SEEDS, f"item_ids must hold between 1 and {MAX_SEEDS} items"
        )
        require(len(set(request.item_ids)) == len(request.item_ids), "item_ids must be distinct")
        require(
            not request.weights or len(request.weights) == len(request.item_ids),
            "weights must be empty or one per item_id",
        )
        require(0 <= request.count <= MAX_SIMILAR, f"count must be between 0 and {MAX_SIMILAR}")
        if not any(seed in self.graph for seed in request.item_ids):
            raise NotFound("none of the seed items is in the catalog (or all are hidden)")
        weights = request.weights or [1.0] * len(request.item_ids)
        found = await asyncio.to_thread(
            self.graph.related_to_items,
            list(zip(request.item_ids, weights, strict=True)),
            request.count or DEFAULT_SIMILAR,
            request.domain,
            frozenset(request.exclude_item_ids),
        )
        return items_pb2.RelatedToItemsResponse(items=[_related_item(n, seed) for n, seed in found])

    async def ExportItems(
        self, request: items_pb2.ExportItemsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[items_pb2.ExportItemsResponse]:
        require(
            0 <= request.batch_size <= MAX_EXPORT_BATCH,
            f"batch_size must be between 0 and {MAX_EXPORT_BATCH}",
        )
        since = None
        if request.HasField("updated_since"):
            since = checked_datetime(request.updated_since, "updated_since")
        batches = self.store.export(request.batch_size or DEFAULT_EXPORT_BATCH, since)
        async for batch in _in_thread(batches):
            yield items_pb2.ExportItemsResponse(items=batch)

    async def ListUnavailable(
        self, request: items_pb2.ListUnavailableRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[items_pb2.ListUnavailableResponse]:
        require(
            0 <= request.batch_size <= MAX_UNAVAILABLE_BATCH,
            f"batch_size must be between 0 and {MAX_UNAVAILABLE_BATCH}",
        )
        batches = self.store.unavailable(request.batch_size or DEFAULT_UNAVAILABLE_BATCH)
        async for batch in _in_thread(batches):
            yield items_pb2.ListUnavailableResponse(item_ids=batch)


async def _in_thread(batches: Iterator[T]) -> AsyncIterator[T]:
    """Each batch of a store's blocking iterator, read in a worker thread (the database waits there)."""
    while True:
        batch = await asyncio.to_thread(next, batches, None)
        if batch is None:
            return
        yield batch


def _masked(item: common_pb2.Item, mask: field_mask_pb2.FieldMask) -> common_pb2.Item:
    """The item's id and the fields `mask` names."""
    masked = common_pb2.Item(item_id=item.item_id)
    paths = list(mask.paths)
    if all(path in SCALAR_FIELDS for path in paths):  # the common case, 20x faster than MergeMessage
        for path in paths:
            setattr(masked, path, getattr(item, path))
    else:
        mask.MergeMessage(item, masked)
    return masked


def _related_item(found: Neighbour, seed: str = "") -> items_pb2.RelatedItem:
    return items_pb2.RelatedItem(
        item_id=found.item_id,
        score=found.score,
        path=[common_pb2.GraphLink(relation=f.relation, value=f.value) for f in found.shared],
        domain=found.domain,
        anchor_item_id=seed,
    )
