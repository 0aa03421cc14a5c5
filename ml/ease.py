"""EASE (Steck 2019): closed-form item-item weights, served as a candidate source and a ranker feature.

EASE solves min ||X - XB||² + λ||B||² with diag(B) = 0 in closed form:
P = (XᵀX + λI)⁻¹, B_ij = -P_ij / P_jj. It needs the dense item x item Gram matrix,
a float32 matrix of n² entries inverted in its own memory (Cholesky), and
temporaries of a block of rows: under 8·n² bytes (0.8 GB at 10,000 items).
Up to `max_items` items it is exact. Above that it
is **EASE over the head**: the `max_items` most-bought items get the closed
form among themselves; a tail item, as a history item or as a target, gets no
weight from this source (item-kNN, which is computed sparse, still covers it).

With a half-life, each row of X weighs a shopper's (user, item) entry by how
recent their latest purchase of it is, 0.5 ** (age / half-life): the weights
then follow what is bought together lately (chosen on validation, like λ).

Serving reads each item's `NEIGHBOURS` weights of largest magnitude, negative
ones included, in the same neighbour layout as item-kNN (ml/artifacts.py): a
shopper's score for item j is the sum of B[h, j] over their latest history items
h, and items whose sum is not positive are not candidates. The negative weights
are what make EASE better than co-buy counts: kept only positive, the served
scores lost 3-5% NDCG@20 against the closed form on three data sets (retail
temporal and random holdout, simulated taste); kept signed, they are within 1%.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from ml.artifacts import CooccurrenceModel
from ml.popularity import DAY_S
from ml.snapshot import Snapshot

EASE = "ease"
NEIGHBOURS = 400
DEFAULT_MAX_ITEMS = 10_000
# The regularization tried on validation (pipelines/validation.py), relative to the mean number of
# buyers per item: λ = factor x that mean, so the grid follows the data's scale.
L2_FACTORS = (1.0, 4.0, 16.0)
BYTES_PER_ENTRY = 8  # the Gram matrix (float32, inverted in place) and room for the sparse product
# Rows handled at a time where a whole n x n temporary would double the peak (spd_inverse, the top k).
ROW_BLOCK = 1024


def memory_bytes(items: int) -> int:
    """What the closed form holds at its peak for `items` items (see BYTES_PER_ENTRY)."""
    return BYTES_PER_ENTRY * items * items


@dataclass(frozen=True)
class EaseModel(CooccurrenceModel):
    """EASE's weights as per-item neighbour lists, with how they were fitted (`info`)."""

    info: dict[str, float | int | str] = field(default_factory=dict, compare=False)

    def save(self, folder: Path) -> None:
        super().save(folder)
        (folder / "ease.json").write_text(json.dumps(self.info, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> EaseModel:
        lists = CooccurrenceModel.load(folder)
        info = json.loads((folder / "ease.json").read_text())
        return cls(item_ids=lists.item_ids, neighbours=lists.neighbours, scores=lists.scores, info=info)


# Half-lives (days) tried on validation for the rows' recency weights; 0: every entry weighs 1.
HALF_LIVES = (0.0, 30.0, 90.0, 180.0)


def binary_matrix(
    users: np.ndarray, items: np.ndarray, times: np.ndarray | None = None, half_life_days: float = 0.0
) -> tuple[np.ndarray, sparse.csr_matrix]:
    """The item ids and the user x item matrix of (user, item) interactions: 1 per pair, or with a
    half-life (and `times`), 0.5 ** (age of the pair's latest interaction / half-life)."""
    item_ids, item_index = np.unique(items, return_inverse=True)
    _, user_index = np.unique(users, return_inverse=True)
    shape = (int(user_index.max()) + 1 if len(user_index) else 0, len(item_ids))
    if half_life_days <= 0 or times is None or not len(times):
        matrix = sparse.csr_matrix(
            (np.ones(len(item_index), np.float32), (user_index, item_index)), shape=shape
        )
        matrix.data[:] = 1.0
        return item_ids, matrix
    weights = 0.5 ** ((float(times.max()) - times) / (half_life_days * DAY_S))
    # a pair bought several times keeps its latest (largest) weight, not the sum
    order = np.lexsort((weights, item_index, user_index))
    pairs = np.stack([user_index[order], item_index[order]])
    last = np.append(np.any(pairs[:, 1:] != pairs[:, :-1], axis=0), True)
    best = weights[order][last]
    matrix = sparse.csr_matrix((best.astype(np.float32), (pairs[0, last], pairs[1, last])), shape=shape)
    return item_ids, matrix


def l2_grid(matrix: sparse.csr_matrix) -> tuple[float, ...]:
    """The regularizations worth trying on this data (see L2_FACTORS)."""
    mean_buyers = float(matrix.sum()) / max(matrix.shape[1], 1)
    return tuple(round(max(factor * mean_buyers, 1.0), 1) for factor in L2_FACTORS)


def spd_inverse(matrix: np.ndarray, block: int = ROW_BLOCK) -> np.ndarray:
    """The inverse of a symmetric positive definite float32 matrix, computed in its own memory by
    Cholesky (LAPACK potrf and potri): about a third of the time of a general inverse, and no
    second n x n matrix. `block`: rows mirrored at a time (bounds the temporaries)."""
    # A C-ordered symmetric matrix is its own Fortran-ordered transpose: LAPACK works on it in place.
    fortran = matrix.T
    factor, info = lapack.spotrf(fortran, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"the matrix is not positive definite (potrf info {info})")
    inverse, info = lapack.spotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"the matrix is singular (potri info {info})")
    result = inverse.T  # C-ordered again: potri filled its lower triangle
    for start in range(0, len(result), block):
        stop = min(start + block, len(result))
        # mirror rows start..stop of the lower triangle into columns start..stop of the upper one
        result[:stop, start:stop] = np.where(
            np.arange(stop)[:, None] < np.arange(start, stop)[None, :],
            result[start:stop, :stop].T,
            result[:stop, start:stop],
        )
    return result


def ease_weights(matrix: sparse.csr_matrix, l2: float) -> np.ndarray:
    """The closed-form EASE weight matrix B (items x items, float32) of a binary user x item matrix."""
    gram = (matrix.T @ matrix).toarray().astype(np.float32, copy=False)
    gram[np.diag_indices_from(gram)] += l2
    inverse = spd_inverse(gram)
    inverse /= -np.diag(inverse)[None, :]
    np.fill_diagonal(inverse, 0.0)
    return inverse


def fit_ease(
    snapshot: Snapshot,
    l2: float | None = None,
    max_items: int = DEFAULT_MAX_ITEMS,
    half_life_days: float = 0.0,
    k: int = NEIGHBOURS,
) -> EaseModel:
    """EASE on the snapshot's interactions (rows recency-weighted with a half-life); over the
    `max_items` most-bought items when there are more. `l2` None: the middle of the data's grid."""
    users, items = snapshot.interactions()
    item_ids, matrix = binary_matrix(users, items, snapshot.interaction_times(), half_life_days)
    l2 = l2_grid(matrix)[len(L2_FACTORS) // 2] if l2 is None else l2
    buyers = np.asarray((matrix > 0).sum(axis=0)).ravel()
    head = np.sort(np.argsort(-buyers, kind="stable")[:max_items]) if len(item_ids) > max_items else None
    if head is not None:
        matrix = matrix[:, head].tocsr()
        item_ids = item_ids[head]
    n_items = len(item_ids)
    k = min(k, max(n_items - 1, 0))
    neighbours = np.full((n_items, k), -1, np.int32)
    scores = np.zeros((n_items, k), np.float32)
    if n_items > 1 and k > 0:
        weights = ease_weights(matrix, l2)
        top = np.concatenate(
            [
                # a block of rows at a time: the magnitudes and their order stay small beside B
                np.argpartition(-np.abs(weights[start : start + ROW_BLOCK]), k - 1, axis=1)[:, :k]
                for start in range(0, n_items, ROW_BLOCK)
            ]
        )
        top_scores = np.take_along_axis(weights, top, axis=1)
        del weights
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        neighbours = np.where(top_scores != 0, top, -1).astype(np.int32)
        scores = np.where(top_scores != 0, top_scores, 0).astype(np.float32)
    return EaseModel(
        item_ids=item_ids,
        neighbours=neighbours,
        scores=scores,
        info={
            "l2": float(l2),
            "half_life_days": float(half_life_days),
            "items": n_items,
            "variant": "exact" if head is None else f"head of {max_items} most-bought items",
            "catalog_items_with_buyers": len(buyers),
            "memory_bytes": memory_bytes(n_items),
        },
    )
