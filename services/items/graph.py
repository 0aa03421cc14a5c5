"""The catalog's knowledge graph behind Related: items linked through the facts they share.

Nodes are items and facts: a brand, every level of a category path, an
attribute pair. Products, content and promotions hang off the same fact nodes,
which is what links domains: an article filed under Home>Kitchen is two steps
from every kitchen product. Two items are related through each fact node they
share, and the link counts more the rarer the fact (Adamic-Adar: 1 / log of the
node's degree), so "same brand" outweighs "same top-level category".

Related walks the item's facts from the rarest up and stops once it has enough
neighbours; facts shared by more than MAX_WALKED_DEGREE items are not walked
(they relate everything to everything). An upserted item replaces its links at
once; a hidden one leaves the graph.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ml.text_encoder import Fact, facts_of
from recsys.common.v1 import common_pb2

MAX_WALKED_DEGREE = 20_000
GATHER_FACTOR = 5  # neighbours gathered per neighbour asked for before the walk stops


@dataclass(frozen=True)
class Neighbour:
    item_id: str
    score: float
    shared: tuple[Fact, ...]  # rarest first
    domain: int


class ItemGraph:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._facts: dict[str, set[Fact]] = {}
        self._domains: dict[str, int] = {}
        self._members: dict[Fact, set[str]] = {}

    def load(self, catalog: Iterable[Sequence[common_pb2.Item]]) -> None:
        for batch in catalog:
            self.upsert(batch)

    def upsert(self, items: Sequence[common_pb2.Item]) -> None:
        with self._lock:
            for item in items:
                for fact in self._facts.pop(item.item_id, set()):
                    members = self._members[fact]
                    members.discard(item.item_id)
                    if not members:
                        del self._members[fact]
                self._domains.pop(item.item_id, None)
                if item.hidden:
                    continue
                facts = facts_of(item)
                self._facts[item.item_id] = facts
                self._domains[item.item_id] = item.domain
                for fact in facts:
                    self._members.setdefault(fact, set()).add(item.item_id)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._facts

    def related(
        self, item_id: str, count: int, domain: int = 0, exclude: frozenset[str] = frozenset()
    ) -> list[Neighbour]:
        """Up to `count` items sharing facts with `item_id` (of `domain` when given), strongest first."""
        with self._lock:
            facts = sorted(self._facts.get(item_id, set()), key=lambda f: (len(self._members[f]), f))
            scores: dict[str, float] = {}
            shared: dict[str, list[Fact]] = {}
            for fact in facts:
                members = self._members[fact]
                if len(members) > MAX_WALKED_DEGREE or len(scores) >= GATHER_FACTOR * count:
                    break
                weight = 1.0 / math.log(1 + len(members))
                for other in members:
                    if other == item_id or other in exclude or (domain and self._domains[other] != domain):
                        continue
                    scores[other] = scores.get(other, 0.0) + weight
                    shared.setdefault(other, []).append(fact)
            ranked = sorted(scores, key=lambda other: (-scores[other], other))[:count]
            return [Neighbour(o, scores[o], tuple(shared[o]), self._domains[o]) for o in ranked]

    def related_to_items(
        self,
        seeds: Sequence[tuple[str, float]],
        count: int,
        domain: int = 0,
        exclude: frozenset[str] = frozenset(),
    ) -> list[tuple[Neighbour, str]]:
        """Up to `count` items linked to any of the (seed, weight) pairs, each once with its
        strongest link (score times the seed's weight; the earlier seed on a tie) and that seed;
        strongest first, ties by id. Seeds are left out; seeds the graph lacks link nowhere."""
        left_out = exclude | {seed for seed, _ in seeds}
        best: dict[str, tuple[Neighbour, str]] = {}
        for seed, weight in seeds:
            for found in self.related(seed, count, domain, left_out):
                weighted = replace(found, score=found.score * weight)
                if found.item_id not in best or weighted.score > best[found.item_id][0].score:
                    best[found.item_id] = (weighted, seed)
        return sorted(best.values(), key=lambda pair: (-pair[0].score, pair[0].item_id))[:count]
