"""The approximate nearest-neighbour index of item embeddings behind SimilarItems (faiss HNSW).

Embeddings (ml.text_encoder.ItemEmbeddings.embed: the learned text vector
joined with hashed attributes and price) are computed from the current catalog,
so an item nobody has bought yet is as findable as a best seller. An upserted
item is re-encoded at once: its old row becomes a tombstone and a new row is
added; when tombstones pass a quarter of the rows the graph is rebuilt. Hidden
items are left out. HNSW is not safe to search while it grows, so one lock
guards the index.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import faiss
import numpy as np

from ml.text_encoder import ATTRIBUTE_DIM, ItemEmbeddings
from recsys.common.v1 import common_pb2

NEIGHBOURS_PER_NODE = 32
BUILD_DEPTH = 80
MIN_SEARCH_DEPTH = 64
REBUILD_SHARE = 0.25


class ItemIndex:
    def __init__(self, embeddings: ItemEmbeddings) -> None:
        self.embeddings = embeddings
        self._lock = threading.Lock()
        self._rows: dict[str, int] = {}
        self._owners: list[str | None] = []
        width = embeddings.vectors.shape[1] + ATTRIBUTE_DIM + 1  # text, attributes, price
        self._vectors = np.zeros((0, width), dtype=np.float32)
        self._index = self._empty()

    @classmethod
    def build(cls, embeddings: ItemEmbeddings, catalog: Iterable[Sequence[common_pb2.Item]]) -> ItemIndex:
        index = cls(embeddings)
        for batch in catalog:
            index.upsert(batch)
        return index

    def _empty(self) -> faiss.Index:
        index = faiss.IndexHNSWFlat(self._vectors.shape[1], NEIGHBOURS_PER_NODE, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = BUILD_DEPTH
        return index

    def __len__(self) -> int:
        return len(self._rows)

    def upsert(self, items: Sequence[common_pb2.Item]) -> None:
        """(Re-)encodes visible items and drops hidden ones."""
        visible = [item for item in items if not item.hidden]
        vectors = self.embeddings.embed(visible) if visible else None
        with self._lock:
            for item in items:
                row = self._rows.pop(item.item_id, None)
                if row is not None:
                    self._owners[row] = None
            if vectors is not None:
                start = len(self._owners)
                self._owners.extend(item.item_id for item in visible)
                self._rows.update((item.item_id, start + n) for n, item in enumerate(visible))
                self._vectors = np.concatenate([self._vectors, vectors])
                self._index.add(vectors)
            if len(self._owners) - len(self._rows) > REBUILD_SHARE * len(self._owners):
                self._compact()

    def _compact(self) -> None:
        live = [row for row, owner in enumerate(self._owners) if owner is not None]
        self._vectors = self._vectors[live]
        self._owners = [self._owners[row] for row in live]
        self._rows = {owner: n for n, owner in enumerate(self._owners) if owner is not None}
        self._index = self._empty()
        if live:
            self._index.add(self._vectors)

    def vectors_of(self, item_ids: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            return {i: self._vectors[self._rows[i]] for i in item_ids if i in self._rows}

    def similar(
        self, seeds: np.ndarray, weights: np.ndarray, count: int, exclude: set[str]
    ) -> list[tuple[str, float, int]]:
        """The `count` items closest (inner product) to the weighted mean of the seed vectors, each
        with the row of the seed closest to it."""
        query = (weights[:, None] * seeds).sum(axis=0)
        query = (query / max(float(np.linalg.norm(query)), 1e-12)).astype(np.float32)[None, :]
        with self._lock:
            dead = len(self._owners) - len(self._rows)
            depth = min(len(self._owners), count + len(exclude) + dead)
            if depth == 0:
                return []
            self._index.hnsw.efSearch = max(MIN_SEARCH_DEPTH, depth)
            scores, rows = self._index.search(query, depth)
            kept = rows[0] >= 0  # faiss pads a short answer with -1
            rows, scores = rows[0][kept], scores[0][kept]
            owners = [self._owners[row] for row in rows.tolist()]
            closest_seeds = np.argmax(self._vectors[rows] @ seeds.T, axis=1) if len(rows) else rows
        chosen = [
            (owner, score, seed)
            for owner, score, seed in zip(owners, scores.tolist(), closest_seeds.tolist(), strict=True)
            if owner is not None and owner not in exclude
        ]
        return chosen[:count]
