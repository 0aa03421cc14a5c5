"""Item text and the learned text encoder's artifact, shared by its trainer and the items service.

An item's text is its title, brand, category path, kind, attribute values and
description, lower-cased and split into words. The encoder (trained in
TensorFlow, ml/text_train.py) is a word CNN: embeddings, one
convolution per window width with ReLU, max over the words, a dense layer and
unit length. Its weights are saved as NumPy arrays and applied here in NumPy,
so the items service embeds a new or changed item without loading TensorFlow;
a test checks that both give the same vectors.

An item's embedding joins three parts, then scales to unit length:
the text vector (weight TEXT_WEIGHT), its attributes (brand, each level of the
category path, domain, attribute pairs) hashed into ATTRIBUTE_DIM signed slots
(weight ATTRIBUTE_WEIGHT), and its log price (weight PRICE_WEIGHT). Two items of
the same brand and category are therefore close even when their words differ.

item_embeddings/<v>/encoder.npz holds the vocabulary, the weights and every
catalog item's text vector at training time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys.common.v1 import common_pb2

ITEM_EMBEDDINGS = "item_embeddings"
MAX_WORDS = 24
PADDING, UNKNOWN = 0, 1  # word ids reserved before the vocabulary
_WORD = re.compile(r"[^\W_]+")
ATTRIBUTE_DIM = 64
TEXT_WEIGHT = 1.0
ATTRIBUTE_WEIGHT = 0.7
PRICE_WEIGHT = 0.2
PRICE_SCALE = float(np.log1p(1000.0))  # log prices are divided by this (about 1 for prices near 1,000)


def item_text(item: common_pb2.Item) -> str:
    """Everything an item says about itself in words."""
    parts = [item.title, item.brand, " ".join(item.category_path), item.kind]
    parts += [f"{value}" for _, value in sorted(item.attributes.items())]
    parts.append(item.description)
    return " ".join(part for part in parts if part)


@dataclass(frozen=True, order=True)
class Fact:
    """A fact an item holds: the item embedding hashes it, the knowledge graph links items by it."""

    relation: str  # "brand", "category" or "attribute"
    value: str  # the brand, a category path prefix ("Home>Kitchen") or an attribute ("color=red")


def category_facts(path: Sequence[str]) -> set[Fact]:
    """One fact per level of a category path: "Home", "Home>Kitchen"..."""
    return {Fact("category", ">".join(path[: n + 1])) for n in range(len(path))}


def facts_of(item: common_pb2.Item) -> set[Fact]:
    found = {Fact("brand", item.brand)} if item.brand else set()
    found |= category_facts(item.category_path)
    found |= {Fact("attribute", f"{key}={value}") for key, value in item.attributes.items() if value}
    return found


def attribute_vector(item: common_pb2.Item) -> np.ndarray:
    """The item's domain and facts hashed into ATTRIBUTE_DIM signed slots, unit length (zeros if none)."""
    features = [f"domain={item.domain}"] if item.domain else []
    features += [
        (fact.value if fact.relation == "attribute" else f"{fact.relation}={fact.value}").lower()
        for fact in facts_of(item)
    ]
    vector = np.zeros(ATTRIBUTE_DIM, dtype=np.float32)
    for feature in features:
        digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
        vector[digest % ATTRIBUTE_DIM] += 1.0 if (digest >> 32) & 1 else -1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def word_ids(texts: list[str], vocabulary: dict[str, int]) -> np.ndarray:
    """texts by MAX_WORDS word ids: known words by their id, others UNKNOWN, then PADDING."""
    ids = np.full((len(texts), MAX_WORDS), PADDING, dtype=np.int32)
    for row, text in enumerate(texts):
        found = [vocabulary.get(word, UNKNOWN) for word in words(text)][:MAX_WORDS]
        ids[row, : len(found)] = found
    return ids


@dataclass(frozen=True)
class ItemEmbeddings:
    """The encoder's weights and the catalog's vectors (rows of `vectors`, unit length)."""

    vocabulary: np.ndarray  # word of id n + 2
    embedding: np.ndarray  # (words + 2, dim)
    kernels: list[np.ndarray]  # per window width: (width, dim, filters)
    biases: list[np.ndarray]
    dense: np.ndarray  # (widths * filters, out)
    dense_bias: np.ndarray
    item_ids: np.ndarray
    vectors: np.ndarray

    @property
    def word_index(self) -> dict[str, int]:
        return {word: n + 2 for n, word in enumerate(self.vocabulary.tolist())}

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for texts, exactly as the trained Keras encoder computes them."""
        ids = word_ids(texts, self.word_index)
        embedded = self.embedding[ids]  # (n, words, dim)
        pooled = []
        for kernel, bias in zip(self.kernels, self.biases, strict=True):
            width = kernel.shape[0]
            before = (width - 1) // 2  # Keras "same" padding puts the odd extra cell after
            padded = np.pad(embedded, ((0, 0), (before, width - 1 - before), (0, 0)))
            out = sum(padded[:, k : k + MAX_WORDS] @ kernel[k] for k in range(width)) + bias
            pooled.append(np.maximum(out, 0.0).max(axis=1))
        vectors = np.concatenate(pooled, axis=1) @ self.dense + self.dense_bias
        return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(
            np.float32
        )

    def embed(self, items: Sequence[common_pb2.Item]) -> np.ndarray:
        """Unit item embeddings: text vector, hashed attributes and log price, weighted and joined."""
        text = self.encode([item_text(item) for item in items]) * TEXT_WEIGHT
        attributes = np.stack([attribute_vector(item) for item in items]) * ATTRIBUTE_WEIGHT
        price = np.array([[np.log1p(max(item.price, 0.0)) / PRICE_SCALE] for item in items]) * PRICE_WEIGHT
        joined = np.concatenate([text, attributes, price.astype(np.float32)], axis=1)
        return (joined / np.maximum(np.linalg.norm(joined, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def save(self, folder: Path) -> None:
        layers = {f"kernel_{n}": k for n, k in enumerate(self.kernels)}
        layers |= {f"bias_{n}": b for n, b in enumerate(self.biases)}
        np.savez(
            folder / "encoder.npz",
            vocabulary=self.vocabulary,
            embedding=self.embedding,
            dense=self.dense,
            dense_bias=self.dense_bias,
            item_ids=self.item_ids,
            vectors=self.vectors,
            widths=np.array(len(self.kernels)),
            **layers,
        )

    @classmethod
    def load(cls, folder: Path) -> ItemEmbeddings:
        with np.load(folder / "encoder.npz") as data:
            widths = int(data["widths"])
            return cls(
                vocabulary=data["vocabulary"],
                embedding=data["embedding"],
                kernels=[data[f"kernel_{n}"] for n in range(widths)],
                biases=[data[f"bias_{n}"] for n in range(widths)],
                dense=data["dense"],
                dense_bias=data["dense_bias"],
                item_ids=data["item_ids"],
                vectors=data["vectors"],
            )
