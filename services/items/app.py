"""Wires the items service: catalog store, popularity, item embeddings, knowledge graph, servicer."""

from __future__ import annotations

import asyncio

from ml.artifacts import POPULARITY, PopularityModel
from ml.similar import ItemIndex
from ml.text_encoder import ITEM_EMBEDDINGS, ItemEmbeddings
from recsys.items.v1 import items_pb2_grpc
from services.items.graph import ItemGraph
from services.items.servicer import DEFAULT_EXPORT_BATCH, ItemsServicer
from services.items.store import ItemsStore
from shared.config import Settings
from shared.models import ModelWatcher
from shared.server import ServiceApp, assemble

NAME = "items"


def build(settings: Settings) -> ServiceApp:
    store = ItemsStore(settings.database_url(NAME))
    popularity = ModelWatcher(settings.model_dir, POPULARITY, PopularityModel.load, settings.model_poll_s)
    # A new encoder version re-encodes the whole current catalog, then replaces the index.
    similar = ModelWatcher(
        settings.model_dir,
        ITEM_EMBEDDINGS,
        lambda folder: ItemIndex.build(ItemEmbeddings.load(folder), store.export(DEFAULT_EXPORT_BATCH)),
        settings.model_poll_s,
    )
    graph = ItemGraph()

    async def load_graph() -> None:
        """The knowledge graph of the stored catalog, before the service reports ready."""
        await asyncio.to_thread(graph.load, store.export(DEFAULT_EXPORT_BATCH))

    return assemble(
        NAME,
        items_pb2_grpc.add_ItemsServiceServicer_to_server,
        ItemsServicer(store, popularity, similar, graph),
        store=store,
        migrate_on_start=settings.migrate_on_start,
        models=[popularity, similar],
        dependencies=[load_graph],
    )
