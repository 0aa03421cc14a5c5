"""TransE embeddings of the knowledge graph (Bordes et al., "Translating Embeddings for
Modeling Multi-relational Data", 2013), trained in TensorFlow.

The triples are the graph's: item -brand-> brand, item -category-> every level of
its category path, item -attribute-> pair (shared/text_encoder.facts_of), and the
shoppers' purchases, user -bought-> item. Each entity and relation gets a vector so
that head + relation lands near tail; the loss ranks every true triple a margin
ahead of the same triple with its head or tail swapped for a random entity of the
same role. Entity vectors are kept at unit length, as in the paper.

Shoppers who bought the same things sit near each other, and so do their items
(user + bought ~ item for each), while an item nobody bought yet is placed by its
facts alone: that is what makes the vectors useful for new items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from ml.text_encoder import Fact

GRAPH_EMBEDDINGS = "graph_embeddings"
BOUGHT = "bought"


@dataclass(frozen=True)
class TransEConfig:
    dim: int = 32
    margin: float = 1.0
    epochs: int = 10
    batch_size: int = 2048
    learning_rate: float = 1e-2
    seed: int = 0


@dataclass(frozen=True)
class Triples:
    """Heads, relations and tails as entity names ("item:85123A", "user:17850", "brand:Acme")."""

    heads: np.ndarray
    relations: np.ndarray
    tails: np.ndarray

    def __len__(self) -> int:
        return len(self.heads)


def graph_triples(
    item_ids: Sequence[str], item_facts: Sequence[set[Fact]], users: np.ndarray, items: np.ndarray
) -> Triples:
    """Every fact of the catalog (`item_facts[n]` of `item_ids[n]`) and every distinct (user, item)
    purchase, as triples."""
    heads: list[str] = []
    relations: list[str] = []
    tails: list[str] = []
    for item_id, facts in zip(item_ids, item_facts, strict=True):
        for fact in sorted(facts):
            heads.append(f"item:{item_id}")
            relations.append(fact.relation)
            tails.append(f"{fact.relation}:{fact.value}")
    pairs = (
        np.unique(np.stack([users.astype(str), items.astype(str)]), axis=1)
        if len(users)
        else np.zeros((2, 0), str)
    )
    heads += [f"user:{user}" for user in pairs[0].tolist()]
    relations += [BOUGHT] * pairs.shape[1]
    tails += [f"item:{item}" for item in pairs[1].tolist()]
    return Triples(np.array(heads, dtype=str), np.array(relations, dtype=str), np.array(tails, dtype=str))


@dataclass(frozen=True)
class GraphEmbeddings:
    entities: np.ndarray
    vectors: np.ndarray  # (entities, dim), unit length
    relations: np.ndarray
    relation_vectors: np.ndarray  # (relations, dim)

    def vectors_of(self, names: list[str]) -> np.ndarray:
        """Each named entity's vector; zeros for entities the graph does not hold."""
        index = {name: n for n, name in enumerate(self.entities.tolist())}
        rows = np.array([index.get(name, -1) for name in names], dtype=np.int64)
        found = np.zeros((len(names), self.vectors.shape[1]), np.float32)
        found[rows >= 0] = self.vectors[rows[rows >= 0]]
        return found

    def save(self, folder: Path) -> None:
        np.savez(
            folder / "transe.npz",
            entities=self.entities,
            vectors=self.vectors,
            relations=self.relations,
            relation_vectors=self.relation_vectors,
        )

    @classmethod
    def load(cls, folder: Path) -> GraphEmbeddings:
        with np.load(folder / "transe.npz") as data:
            return cls(**{name: data[name] for name in data.files})


def fit_transe(
    triples: Triples,
    config: TransEConfig = TransEConfig(),
    on_epoch: Callable[[int, float], None] = lambda epoch, loss: None,
) -> GraphEmbeddings:
    """Raises ValueError when there are too few triples to learn from."""
    if len(triples) < 2:
        raise ValueError("TransE needs at least two triples")
    entities, ids = np.unique(np.concatenate([triples.heads, triples.tails]), return_inverse=True)
    heads, tails = ids[: len(triples)], ids[len(triples) :]
    relation_names, relation_ids = np.unique(triples.relations, return_inverse=True)
    # Corruptions draw from the entities that play the same role in the same relation.
    pools = [
        (np.unique(heads[relation_ids == r]), np.unique(tails[relation_ids == r]))
        for r in range(len(relation_names))
    ]
    rng = np.random.default_rng(config.seed)
    tf.keras.utils.set_random_seed(config.seed)
    initial = rng.normal(size=(len(entities), config.dim)).astype(np.float32)
    entity = tf.Variable(initial / np.linalg.norm(initial, axis=1, keepdims=True))
    bound = 6 / np.sqrt(config.dim)
    relation = tf.Variable(rng.uniform(-bound, bound, (len(relation_names), config.dim)).astype(np.float32))
    optimizer = tf.keras.optimizers.Adam(config.learning_rate)

    def distance(h: tf.Tensor, r: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        return tf.norm(tf.gather(entity, h) + tf.gather(relation, r) - tf.gather(entity, t), axis=1)

    @tf.function
    def step(h: tf.Tensor, r: tf.Tensor, t: tf.Tensor, h_bad: tf.Tensor, t_bad: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.relu(config.margin + distance(h, r, t) - distance(h_bad, r, t_bad)))
        variables = [entity, relation]
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        entity.assign(tf.math.l2_normalize(entity, axis=1))
        return loss

    def corrupted(order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, t = heads[order].copy(), tails[order].copy()
        swap_tail = rng.random(len(order)) < 0.5
        for r, (head_pool, tail_pool) in enumerate(pools):
            chosen = relation_ids[order] == r
            tail_rows = chosen & swap_tail
            head_rows = chosen & ~swap_tail
            t[tail_rows] = rng.choice(tail_pool, int(tail_rows.sum()))
            h[head_rows] = rng.choice(head_pool, int(head_rows.sum()))
        return h, t

    batch = min(config.batch_size, len(triples))
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(len(triples))
        losses = []
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            h_bad, t_bad = corrupted(rows)
            losses.append(float(step(heads[rows], relation_ids[rows], tails[rows], h_bad, t_bad)))
        on_epoch(epoch, float(np.mean(losses)))
    return GraphEmbeddings(
        entities=entities.astype(str),
        vectors=entity.numpy(),
        relations=relation_names.astype(str),
        relation_vectors=relation.numpy(),
    )
