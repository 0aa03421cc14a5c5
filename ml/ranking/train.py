"""Training the ranker on the shop's own history, with candidates produced the way the service makes them.

The lists follow the validation carve training uses everywhere (ml/validation.py):
the candidate sources are fitted on the carve's fitting part and asked for every
validation shopper, and the items held out for that shopper (bought after the
time cut, or drawn at random when shoppers do not come back over time) are the
positives of their list. The other candidates are the negatives: exactly the items
retrieval would have put in front of the ranker. A random share of the lists is
kept for early stopping and the publish gate. The published model serves with item
facts and co-buys recomputed on everything.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from ml.candidates_offline import FittedSources, SourcesConfig, fit_sources, merged, source_lists
from ml.cooccurrence import fit_cooccurrence
from ml.deadline import Deadline, passed
from ml.metrics import ndcg_of_hits, top_k
from ml.ranking.config import RankerConfig
from ml.ranking.ensemble import RankerEnsemble
from ml.ranking.features import (
    FEATURES,
    GROUPS,
    HISTORY_ANCHORS,
    ItemTable,
    RankCandidate,
    Shopper,
    candidate_features,
    item_table,
    vocabulary_of,
)
from ml.ranking.gate import PublishGate, RankerRefused, gain_interval
from ml.ranking.model import RankerNet
from ml.ranking.views import LearnedViews
from ml.ranking.views_train import ViewsConfig, fit_views
from ml.retrieval import Retrieved, fused_order
from ml.snapshot import Snapshot
from ml.validation import MIN_SHOPPERS, Carve, Held, carve

VALIDATION_SHARE = 0.15
# After a time carve the ranker is validated on the lists of the latest 30% of held purchases.
LATER_SHARE = 0.3
CANDIDATES = 200
CUTOFF_K = 20


@dataclass(frozen=True)
class RankingLists:
    """Training lists, one per shopper: features [U, N, F], item rows + 1 (0 = unknown or padding)
    [U, N], which slots hold a candidate, which were bought, history rows + 1 [U, L], and how many
    new items each shopper bought in all (retrieved or not)."""

    features: np.ndarray
    items: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    history: np.ndarray
    relevant: np.ndarray
    # Lists whose positives were bought in the latest part of a time carve's window: the ranker is
    # validated on them (a later window than it learns from); all False after a random carve.
    later: np.ndarray

    def take(self, rows: np.ndarray) -> RankingLists:
        return RankingLists(*(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))

    def __len__(self) -> int:
        return len(self.relevant)


def shopper_of(held: Held) -> Shopper:
    """What the ranker knows of a validation shopper at the carve."""
    return Shopper(held.history, held.purchases, held.last_active, "home")


def build_lists(
    table: ItemTable, shoppers: list[Held], candidates: list[list[RankCandidate]]
) -> RankingLists:
    count = len(shoppers)
    features = np.zeros((count, CANDIDATES, len(FEATURES)), np.float32)
    items = np.zeros((count, CANDIDATES), np.int64)
    valid = np.zeros((count, CANDIDATES), bool)
    labels = np.zeros((count, CANDIDATES), np.float32)
    history = np.zeros((count, HISTORY_ANCHORS), np.int64)
    relevant = np.zeros(count, np.float32)
    for row, (held, found) in enumerate(zip(shoppers, candidates, strict=True)):
        found = found[:CANDIDATES]
        computed = candidate_features(table, shopper_of(held), found)
        n = len(found)
        features[row, :n] = computed.matrix
        items[row, :n] = computed.rows + 1
        valid[row, :n] = True
        labels[row, :n] = [c.item_id in held.items for c in found]
        own = table.positions(held.history[:HISTORY_ANCHORS]) + 1
        history[row, : len(own)] = own
        relevant[row] = len(held.items)
    return RankingLists(features, items, valid, labels, history, relevant, np.zeros(count, bool))


def ndcg_per_list(scores: np.ndarray, lists: RankingLists, k: int = CUTOFF_K) -> np.ndarray:
    """NDCG@k of each list ordered by `scores`, counting bought items retrieval missed as misses."""
    order = top_k(scores, k, exclude=~lists.valid)
    return ndcg_of_hits(np.take_along_axis(lists.labels, order, 1), lists.relevant)


def ndcg(scores: np.ndarray, lists: RankingLists, k: int = CUTOFF_K) -> float:
    """Mean NDCG@k of the lists ordered by `scores`."""
    return float(np.mean(ndcg_per_list(scores, lists, k)))


def candidate_order(lists: RankingLists) -> np.ndarray:
    """Scores that keep retrieval's order (the candidates-alone baseline)."""
    return -np.tile(np.arange(lists.valid.shape[1], dtype=np.float32), (len(lists), 1))


def _scores(net: RankerNet | RankerEnsemble, lists: RankingLists, batch: int = 256) -> np.ndarray:
    parts = [
        net.scores(
            lists.features[s : s + batch], lists.items[s : s + batch], lists.history[s : s + batch]
        ).numpy()
        for s in range(0, len(lists), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros(lists.valid.shape, np.float32)


def harmful_groups(
    net: RankerEnsemble, validation: RankingLists, gate: PublishGate, seed: int = 0
) -> tuple[str, ...]:
    """The feature groups whose removal from the trained ensemble (features held at their training
    mean, and the learned part the group carries: item biases for "item", latent factors for
    "collaborative") surely raises its validation NDCG@20 (the gain interval of `gate` above
    zero): what a shop's data says a group does not generalize on."""
    full = ndcg_per_list(_scores(net, validation), validation)
    kept = net.config.removed
    harmful = []
    try:
        for group in GROUPS:
            if group in kept:
                continue
            net.leave_out((*kept, group))
            without = ndcg_per_list(_scores(net, validation), validation)
            if gain_interval(without, full, gate, seed)[1] > 0:
                harmful.append(group)
    finally:
        net.leave_out(kept)
    return tuple(harmful)


@dataclass
class TrainedRanker:
    net: RankerEnsemble
    table: ItemTable
    epochs: list[int]  # each member's best epoch
    validation_ndcg: float
    candidate_ndcg: float
    lists: int
    seconds: float
    validation_lists: int = 0
    # The validation gain over the candidate order and its confidence interval (PublishGate).
    gain: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # Feature groups the group gate left out because they surely hurt on validation (harmful_groups).
    dropped: tuple[str, ...] = ()
    # Which lists judged it: "later purchases" (after a time carve) or "a random share of shoppers".
    validated_on: str = ""
    # What its deadline cut short (fewer networks, fewer epochs, no refit without harmful groups).
    cut: tuple[str, ...] = ()

    def save(self, folder: Path) -> None:
        self.table.save(folder)
        self.net.save(
            folder,
            {
                "epochs": self.epochs,
                "validation_ndcg_at_20": self.validation_ndcg,
                "candidate_order_ndcg_at_20": self.candidate_ndcg,
                "training_lists": self.lists,
                "validation_lists": self.validation_lists,
                "validation_gain": dict(zip(("mean", "low", "high"), self.gain, strict=True)),
            },
        )


def standardization(train: RankingLists) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation of every feature over the training lists' candidates."""
    rows = train.features[train.valid]
    width = train.features.shape[-1]
    mean = rows.mean(0) if len(rows) else np.zeros(width, np.float32)
    std = rows.std(0) if len(rows) else np.ones(width, np.float32)
    return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def fit_net(
    train: RankingLists,
    stopping: RankingLists,
    items: int,
    config: RankerConfig,
    on_epoch: Callable[[int, float, float], None] = lambda *_: None,
    scale: tuple[np.ndarray, np.ndarray] | None = None,
    deadline: Deadline = None,
) -> tuple[RankerNet, int, float]:
    """One network trained listwise with early stopping on NDCG@20 of the `stopping` lists (or
    stopped at `deadline`, after `config.min_epochs`); the best epoch's weights. `scale`: the
    features' (mean, std), by default from `train`."""
    tf.random.set_seed(config.seed)
    mean, std = scale or standardization(train)
    net = RankerNet(items, config, mean, std)
    optimizer = tf.keras.optimizers.Adam(config.learning_rate)

    @tf.function
    def step(
        features: tf.Tensor, item_rows: tf.Tensor, valid: tf.Tensor, labels: tf.Tensor, history: tf.Tensor
    ) -> tf.Tensor:
        with tf.GradientTape() as tape:
            scores = tf.where(valid, net.scores(features, item_rows, history), -1e9)
            target = labels / tf.maximum(tf.reduce_sum(labels, -1, keepdims=True), 1.0)
            loss = -tf.reduce_mean(tf.reduce_sum(target * tf.nn.log_softmax(scores), -1))
            loss += config.l2 * tf.reduce_sum(tf.square(net.vectors))
        variables = net.trainable_variables
        gradients = tape.gradient(loss, variables)
        # A left-out part (the item bias in the "item" ablation) has no gradient: it stays zero.
        optimizer.apply_gradients(
            [(g, v) for g, v in zip(gradients, variables, strict=True) if g is not None]
        )
        return loss

    rng = np.random.default_rng(config.seed)
    best = (-1.0, 0, net.weights())
    for epoch in range(1, config.max_epochs + 1):
        losses = []
        order = rng.permutation(len(train))
        for start in range(0, len(order), config.batch_lists):
            batch = train.take(order[start : start + config.batch_lists])
            losses.append(float(step(batch.features, batch.items, batch.valid, batch.labels, batch.history)))
        quality = ndcg(_scores(net, stopping), stopping)
        on_epoch(epoch, float(np.mean(losses)) if losses else 0.0, quality)
        if quality > best[0]:
            best = (quality, epoch, net.weights())
        elif epoch >= config.min_epochs and epoch - best[1] >= config.patience:
            break
        if epoch >= config.min_epochs and passed(deadline):
            break
    net.assign(best[2])
    return net, best[1], best[0]


def fit_ensemble(
    train: RankingLists,
    items: int,
    config: RankerConfig,
    on_epoch: Callable[[int, int, float, float], None] = lambda *_: None,
    deadline: Deadline = None,
) -> tuple[RankerEnsemble, list[int]]:
    """`config.members` networks (ml/ranking/ensemble.py), member k seeded `config.seed + k`, each
    learning from its own random share of `train` and stopping early on the rest; the ensemble and
    each member's best epoch. `on_epoch(member, epoch, loss, stopping NDCG@20)`. Past `deadline`
    no further member is started (the first always is)."""
    scale = standardization(train)
    members, epochs = [], []
    for k in range(config.members):
        if k and passed(deadline):
            break
        seed = config.seed + k
        order = np.random.default_rng(seed).permutation(len(train))
        cut = max(1, round(config.stopping_share * len(train))) if len(train) > 1 else 0
        net, epoch, _ = fit_net(
            train.take(order[cut:]),
            train.take(order[:cut] if cut else order),
            items,
            dataclasses.replace(config, seed=seed),
            lambda epoch, loss, quality, k=k: on_epoch(k, epoch, loss, quality),
            scale,
            deadline,
        )
        members.append(net)
        epochs.append(epoch)
    return RankerEnsemble(members), epochs


def training_lists(
    snapshot: Snapshot,
    retrieval: SourcesConfig,
    fit_generator: Callable[[Snapshot], object] | None,
    views: ViewsConfig | None = None,
    validation: Carve | None = None,
    fitted: FittedSources | None = None,
    vocabulary: np.ndarray | None = None,
    found: Mapping[str, Mapping[str, list[Retrieved]]] | None = None,
    learned: LearnedViews | None = None,
) -> tuple[RankingLists, np.ndarray]:
    """The lists to learn from and the vocabulary (by default every item of `snapshot`). The candidate
    sources (`fitted`, else fitted here) and the learned views are fitted on the fitting part of
    `validation` (by default the automatic carve of `snapshot`). `found`: every held shopper's source
    lists from `fitted`, when the caller has them already (the validation stage does). `learned`:
    the views, when the caller has fitted them on that fitting part already."""
    validation = validation or carve(snapshot)
    vocabulary = vocabulary_of(snapshot) if vocabulary is None else vocabulary
    fitted = fitted or fit_sources(validation.fit, retrieval, fit_generator)
    table = dataclasses.replace(
        item_table(validation.fit, fitted.knn, retrieval.popularity_half_life_days, vocabulary),
        views=learned or fit_views(validation.fit, vocabulary, views or ViewsConfig()),
    )
    users = sorted(validation.held)
    histories = {user: validation.held[user].history for user in users}
    if found is None:
        found = source_lists(fitted, histories, CANDIDATES, retrieval.recency_decays)
    shoppers = [validation.held[user] for user in users]
    candidates = [
        _candidates(found[user], held, retrieval) for user, held in zip(users, shoppers, strict=True)
    ]
    split = later_split(shoppers)
    if split is None:
        return build_lists(table, *_with_a_purchase(shoppers, candidates)), vocabulary
    earlier_part, later_part, boundary = split
    # The later lists are judged as serving would score them: with item facts and co-buys
    # refitted on every event before them (the published ranker's table is refitted on
    # everything), so that a feature that drifts when refitted shows its cost here.
    before = snapshot.events_where(snapshot.timestamps < boundary)
    refitted = dataclasses.replace(
        item_table(before, fit_cooccurrence(before), retrieval.popularity_half_life_days, vocabulary),
        views=table.views,
    )
    earlier = build_lists(table, *_with_a_purchase(earlier_part, _without(candidates, later_part)))
    later = build_lists(refitted, *_with_a_purchase(later_part, _without(candidates, earlier_part)))
    later.later[:] = True
    return concatenate(earlier, later), vocabulary


def _candidates(
    found: Mapping[str, list[Retrieved]], held: Held, retrieval: SourcesConfig
) -> list[RankCandidate]:
    """The shopper's fused candidates, or none when they hold no item the shopper bought (such a
    list teaches nothing; its fused order alone is cheaper to compute than the candidates). Only the
    lists serving computes are read, as the candidates service does."""
    found = retrieval.fusion.served(found)
    order, _ = fused_order(found, retrieval.fusion.weights, retrieval.fusion.quotas, CANDIDATES)
    if held.items.isdisjoint(order):
        return []
    return [
        RankCandidate(c.item_id, c.fusion_score, c.found_by) for c in merged(found, retrieval, CANDIDATES)
    ]


def _with_a_purchase(
    shoppers: list[Held], candidates: list[list[RankCandidate]]
) -> tuple[list[Held], list[list[RankCandidate]]]:
    """The shoppers, and their lists, whose list holds an item they bought: a list with none teaches
    nothing (left out before its features are computed, which is most of the lists' cost)."""
    kept = [
        (held, found)
        for held, found in zip(shoppers, candidates, strict=True)
        if any(c.item_id in held.items for c in found[:CANDIDATES])
    ]
    return [held for held, _ in kept], [found for _, found in kept]


def nested_lists(
    outer: Carve,
    retrieval: SourcesConfig,
    vocabulary: np.ndarray,
    count: int,
    seed: int = 0,
    on_carve: Callable[[int, Carve], None] = lambda *_: None,
) -> RankingLists | None:
    """More lists to learn from: `count` carves of the same kind, each nested in the previous one's
    fitting part (the first in `outer`'s), with sources and views fitted on its own fitting part.
    Their held items all lie inside `outer`'s fitting part, so none is a purchase the publish gate
    judges on; every list is for learning (`later` all False). None when no carve has enough
    shoppers. The GAN is not refitted for them (`fit_generator` None)."""
    found: list[RankingLists] = []
    fit = outer.fit
    for number in range(count):
        inner = carve(fit, outer.protocol, seed=seed + number + 1)
        if len(inner.held) < MIN_SHOPPERS:
            break
        on_carve(number, inner)
        lists, _ = training_lists(fit, retrieval, None, validation=inner, vocabulary=vocabulary)
        lists.later[:] = False
        found.append(lists)
        fit = inner.fit
    return concatenate(*found) if found else None


def later_split(shoppers: list[Held]) -> tuple[list[Held], list[Held], float] | None:
    """After a time carve: each shopper's held items split at the time (returned third) that leaves
    the latest LATER_SHARE of them in the later part, as two shoppers of the same history. None
    after a random carve, which has no times."""
    moments = [moment for held in shoppers for moment in held.first_bought.values()]
    if not moments or any(not held.first_bought for held in shoppers):
        return None
    boundary = float(np.quantile(moments, 1 - LATER_SHARE))
    earlier, later = [], []
    for held in shoppers:
        first = {item for item, moment in held.first_bought.items() if moment < boundary}
        earlier.append(dataclasses.replace(held, items=first))
        later.append(dataclasses.replace(held, items=held.items - first))
    return earlier, later, boundary


def _without(candidates: list[list[RankCandidate]], other: list[Held]) -> list[list[RankCandidate]]:
    """Each list without the items the shopper bought in the other part of the window: they are
    neither to find nor to count as misses here."""
    return [
        [c for c in found if c.item_id not in held.items]
        for found, held in zip(candidates, other, strict=True)
    ]


def concatenate(first: RankingLists, *rest: RankingLists) -> RankingLists:
    parts = (first, *rest)
    return RankingLists(
        *(np.concatenate([getattr(part, f.name) for part in parts]) for f in dataclasses.fields(first))
    )


def published_table(
    snapshot: Snapshot,
    retrieval: SourcesConfig,
    vocabulary: np.ndarray,
    views: ViewsConfig | None = None,
    learned: LearnedViews | None = None,
) -> ItemTable:
    """Item facts, co-buys and learned views from all of `snapshot`: what the published ranker serves
    with (the network learned from lists made before the time cut). `learned`: views fitted before
    (on the validation carve), served as they are instead of fitted again on everything."""
    return dataclasses.replace(
        item_table(snapshot, fit_cooccurrence(snapshot), retrieval.popularity_half_life_days, vocabulary),
        views=learned or fit_views(snapshot, vocabulary, views or ViewsConfig()),
    )


def fit_ranker(
    snapshot: Snapshot,
    retrieval: SourcesConfig,
    lists: RankingLists,
    vocabulary: np.ndarray,
    config: RankerConfig | None = None,
    on_epoch: Callable[[int, int, float, float], None] = lambda *_: None,
    table: ItemTable | None = None,
    gate: PublishGate | None = None,
    more: RankingLists | None = None,
    deadline: Deadline = None,
) -> TrainedRanker:
    """Trains on `lists` (see `training_lists`), plus `more` lists to learn from only (see
    `nested_lists`), and pairs the network with `table`, by default `published_table(snapshot,
    ...)`. Raises RankerRefused when there are too few lists to learn from or to judge on (`gate`),
    or when the validation gain over the candidate order is not surely above zero: such a ranker is
    not fit to publish. Past `deadline` it trains fewer networks and epochs and skips the refit
    without harmful feature groups (`TrainedRanker.cut` says which)."""
    config = config or RankerConfig()
    gate = gate or PublishGate()
    started = time.perf_counter()
    later = np.flatnonzero(lists.later)
    if len(later) >= gate.min_validation_lists:
        validated_on = f"the latest {LATER_SHARE:.0%} of the validation window's purchases"
        validation_rows = later
        earlier = np.flatnonzero(~lists.later)
        train_rows = np.random.default_rng(config.seed).permutation(earlier)
    else:
        shuffled = np.random.default_rng(config.seed).permutation(len(lists))
        validated_on = f"a random {VALIDATION_SHARE:.0%} of the validation shoppers"
        cut = round(VALIDATION_SHARE * len(lists))
        validation_rows, train_rows = shuffled[:cut], shuffled[cut:]
    held = len(validation_rows)
    if len(train_rows) < gate.min_training_lists or held < gate.min_validation_lists:
        raise RankerRefused(
            f"{len(lists)} lists had a held-out item among their candidates: "
            f"{len(train_rows)} to learn from and {held} to validate on, fewer than the "
            f"{gate.min_training_lists} and {gate.min_validation_lists} needed "
            "(RECSYS_RANKER_MIN_TRAINING_LISTS, RECSYS_RANKER_MIN_VALIDATION_LISTS)"
        )
    train, validation = lists.take(train_rows), lists.take(validation_rows)
    if more is not None and len(more):
        train = concatenate(train, more)
    net, epochs = fit_ensemble(train, len(vocabulary), config, on_epoch, deadline)
    cut = [f"{len(epochs)} of {config.members} networks"] if len(epochs) < config.members else []
    quality = ndcg(_scores(net, validation), validation)
    harmful = harmful_groups(net, validation, gate, config.seed) if gate.drop_harmful_groups else ()
    if harmful and passed(deadline):
        cut.append(f"no refit without the harmful groups {', '.join(harmful)}")
        harmful = ()
    if harmful:
        without = dataclasses.replace(config, removed=(*config.removed, *harmful))
        refit, refit_epochs = fit_ensemble(train, len(vocabulary), without, on_epoch, deadline)
        refit_quality = ndcg(_scores(refit, validation), validation)
        if refit_quality >= quality:
            net, epochs, quality = refit, refit_epochs, refit_quality
        else:
            harmful = ()
    gain = gain_interval(
        ndcg_per_list(_scores(net, validation), validation),
        ndcg_per_list(candidate_order(validation), validation),
        gate,
        config.seed,
    )
    if gate.require_gain and gain[1] <= 0:
        figures = {
            "epochs": epochs,
            "validation_ndcg_at_20": quality,
            "candidate_order_ndcg_at_20": ndcg(candidate_order(validation), validation),
            "validation_gain": dict(zip(("mean", "low", "high"), gain, strict=True)),
        }
        raise RankerRefused(
            f"validation NDCG@20 gain over the candidate order {gain[0]:+.4f}, "
            f"{gate.confidence:.0%} interval [{gain[1]:+.4f}, {gain[2]:+.4f}] over {held} lists: "
            "not surely above zero",
            keep=lambda folder: net.save(folder, figures),
        )
    return TrainedRanker(
        net=net,
        table=table or published_table(snapshot, retrieval, vocabulary),
        epochs=epochs,
        validation_ndcg=quality,
        candidate_ndcg=ndcg(candidate_order(validation), validation),
        lists=len(lists) + (len(more) if more is not None else 0),
        seconds=time.perf_counter() - started,
        validation_lists=held,
        gain=gain,
        dropped=harmful,
        cut=tuple(cut),
        validated_on=validated_on,
    )
