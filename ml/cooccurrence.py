"""Fits the co-occurrence baseline: top-k co-bought items per item, cosine-normalized."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ml.artifacts import CooccurrenceModel
from ml.snapshot import Snapshot

NEIGHBOURS = 100
ROW_BLOCK = 2048


def fit_cooccurrence(snapshot: Snapshot, k: int = NEIGHBOURS) -> CooccurrenceModel:
    users, items = snapshot.interactions()
    item_ids, item_index = np.unique(items, return_inverse=True)
    _, user_index = np.unique(users, return_inverse=True)
    n_items = len(item_ids)
    if n_items == 0:
        return CooccurrenceModel(
            item_ids=item_ids,
            neighbours=np.zeros((0, k), np.int32),
            scores=np.zeros((0, k), np.float32),
        )
    matrix = sparse.csr_matrix(
        (np.ones(len(item_index), np.float32), (user_index, item_index)),
        shape=(int(user_index.max()) + 1, n_items),
    )
    matrix.data[:] = 1.0  # duplicates summed by csr construction; count each buyer once
    by_item = matrix.T.tocsr()
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    norms = np.sqrt(np.maximum(counts, 1.0))
    k = min(k, n_items)
    neighbours = np.full((n_items, k), -1, np.int32)
    scores = np.zeros((n_items, k), np.float32)
    for start in range(0, n_items, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n_items)
        block = (by_item[start:stop] @ matrix).toarray()
        block /= norms[start:stop, None] * norms[None, :]
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        top[top_scores <= 0] = -1
        neighbours[start:stop] = top
        scores[start:stop] = np.where(top_scores > 0, top_scores, 0)
    return CooccurrenceModel(item_ids=item_ids, neighbours=neighbours, scores=scores)
