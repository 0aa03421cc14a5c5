"""The validation stage of training: carve, fit the sources on the rest, score, choose.

Everything chosen or gated on validation in one training run uses this stage's
carve and its fitted sources: EASE's regularization, how much the neighbour
sources favour the shopper's latest items, the fusion of the sources (which ones,
their weights), and the ranker's lists and publish gate. Its report
(table and JSON) is printed and published inside the serving configuration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ml.artifacts import CooccurrenceModel
from ml.candidates_offline import FittedSources, SourcesConfig, fit_sources, source_lists
from ml.ease import HALF_LIVES, EaseModel, binary_matrix, fit_ease, l2_grid
from ml.metrics import ndcg_of_hits
from ml.popularity import fit_popularity
from ml.retrieval import RECENCY_DECAYS, Fusion, Retrieved, fused_order, neighbour_tops
from ml.selection import MIN_IMPROVEMENT, FusionScorer, K, Scored, search_weights
from ml.snapshot import Snapshot
from ml.validation import MIN_SHOPPERS, Carve
from shared import sources

CANDIDATES = 200
# The most validation shoppers the configurations are scored on (a seeded sample above it).
MAX_SCORED_SHOPPERS = 5000
ALL_TIME_POPULAR = "most popular (all-time, baseline)"
Lists = dict[str, dict[str, list[Retrieved]]]
# Sources the stage cannot score offline (they are answered by the items service): they keep their
# quota, so the ranker still sees what they find, but get no weight in the fused order.
UNSCORED = (sources.ITEM_TEXT, sources.KNOWLEDGE_GRAPH)
# EASE's λ grid is widened by this factor, at most this many times, while its best λ is at an edge.
GRID_STEP = 4.0
MAX_WIDENING = 2
# EASE's settings are searched on at most this many most-bought items, then the chosen ones fitted
# once on EASE's whole head: an inversion costs items³, so at 10,000 items the search on 5,000 takes
# an eighth of the time, and on a wide synthetic catalog it ordered the settings as 10,000 did.
SEARCH_MAX_ITEMS = 5000


class NothingToValidate(ValueError):
    """Too few shoppers could be held out to choose on."""


@dataclass(frozen=True)
class QuotaCheck:
    """Recall@CANDIDATES of the fused candidate list with a source's quota and without it."""

    with_quota: float
    without: float


def _candidate_recall(
    lists: Lists, relevant: Mapping[str, set[str]], weights: Mapping[str, float], quotas: Mapping[str, float]
) -> float:
    """Mean recall of the fused candidate list (CANDIDATES long, as the ranker sees it)."""
    found = [
        len(relevant[user].intersection(fused_order(lists[user], weights, quotas, CANDIDATES)[0]))
        / len(relevant[user])
        for user in relevant
        if relevant[user]
    ]
    return float(np.mean(found)) if found else 0.0


def _unused_quotas(
    lists: Lists,
    relevant: Mapping[str, set[str]],
    weights: Mapping[str, float],
    quotas: Mapping[str, float],
    scored: Sequence[str],
) -> dict[str, QuotaCheck]:
    """The `scored` sources the fusion gives no weight whose quota does not raise the candidate
    list's recall by more than MIN_IMPROVEMENT: their items only displace others', and serving
    need not ask them (the GAN's call is the costliest)."""
    unused = {}
    current = None  # the recall under `quotas`: it changes only when a source is dropped
    for source in scored:
        if weights.get(source, 0.0) > 0 or quotas.get(source, 0.0) <= 0:
            continue
        if current is None:
            current = _candidate_recall(lists, relevant, weights, quotas)
        check = QuotaCheck(current, _candidate_recall(lists, relevant, weights, {**quotas, source: 0.0}))
        if check.with_quota <= check.without + MIN_IMPROVEMENT:
            unused[source] = check
            quotas = {**quotas, source: 0.0}
            current = check.without
    return unused


@dataclass(frozen=True)
class Validation:
    """The carve, the sources fitted on its fitting part, every validation shopper's source lists,
    the fusion chosen on them, and the report."""

    carve: Carve
    fitted: FittedSources
    lists: Lists
    sources: SourcesConfig  # the chosen fusion and EASE regularization
    chosen: Scored
    rows: list[Scored] = field(default_factory=list)
    ease_tried: dict[str, float] = field(default_factory=dict)  # "λ=…, half-life … d" -> EASE alone
    decays_tried: dict[str, dict[str, float]] = field(default_factory=dict)  # source -> decay -> alone
    # Sources given weight 0 whose quota found no more bought items: not asked when serving.
    dropped: dict[str, QuotaCheck] = field(default_factory=dict)

    def report(self) -> dict[str, object]:
        return {
            "protocol": self.carve.protocol,
            "reason": self.carve.reason,
            "validation_shoppers": len(self.carve.held),
            "scored_shoppers": int(self.chosen.per_user.shape[0]),
            "ease": {setting: round(ndcg, 5) for setting, ndcg in self.ease_tried.items()},
            "recency_decays": {
                "chosen": dict(self.sources.recency_decays),
                "tried": {
                    source: {decay: round(ndcg, 5) for decay, ndcg in tried.items()}
                    for source, tried in self.decays_tried.items()
                },
            },
            "chosen": {"weights": self.chosen.weights, "ndcg_at_20": round(self.chosen.ndcg, 5)},
            "dropped": {
                source: {
                    f"candidate_recall_at_{CANDIDATES}_with_its_quota": round(check.with_quota, 5),
                    f"candidate_recall_at_{CANDIDATES}_without": round(check.without, 5),
                }
                for source, check in self.dropped.items()
            },
            "rows": [
                {
                    "name": row.name,
                    "weights": row.weights,
                    "ndcg_at_20": round(row.ndcg, 5),
                    "recall_at_20": round(row.recall, 5),
                }
                for row in self.rows
            ],
        }


def _sampled(held: Mapping[str, object], seed: int) -> list[str]:
    users = sorted(held)
    if len(users) <= MAX_SCORED_SHOPPERS:
        return users
    return sorted(np.random.default_rng(seed).choice(users, MAX_SCORED_SHOPPERS, replace=False).tolist())


def _scored_alone(
    model: CooccurrenceModel,
    histories: Mapping[str, list[str]],
    relevant: dict[str, set[str]],
    decays: Sequence[float] = (1.0,),
) -> dict[float, float]:
    """Validation NDCG@K of a neighbour source's list alone (bought items left out), per decay."""
    users = sorted(histories)
    hits = np.zeros((len(decays), len(users), K), np.float64)
    for row, user in enumerate(users):
        history = histories[user]
        tops = neighbour_tops(model, history, set(history), K, decays)
        for column, decay in enumerate(decays):
            found = [item in relevant[user] for item in tops[decay]]
            hits[column, row, : len(found)] = found
    held = np.array([len(relevant[user]) for user in users])
    return {decay: float(ndcg_of_hits(hits[column], held).mean()) for column, decay in enumerate(decays)}


def _choose_ease(
    fit: Snapshot,
    histories: Mapping[str, list[str]],
    relevant: dict[str, set[str]],
    config: SourcesConfig,
    say: Callable[[str], None],
) -> tuple[EaseModel, dict[str, float]]:
    """EASE fitted at each λ of the data's grid (or the configured one; the grid is widened by a
    step while its best λ sits at an edge), then at each half-life of the rows' recency weights with
    the best λ, each scored alone, on at most SEARCH_MAX_ITEMS items; the best settings fitted on
    EASE's whole head when that is wider; that model and every score."""
    users, items = fit.interactions()
    grid = (config.ease_l2,) if config.ease_l2 is not None else l2_grid(binary_matrix(users, items)[1])
    search_items = min(config.ease_max_items, SEARCH_MAX_ITEMS)
    found: dict[str, float] = {}
    best: tuple[float, EaseModel] | None = None

    def attempt(l2: float, half_life: float, max_items: int = search_items) -> EaseModel:
        nonlocal best
        model = fit_ease(fit, l2, max_items, half_life)
        ndcg = _scored_alone(model, histories, relevant)[1.0]
        found[f"λ={l2:g}, half-life {half_life:g} d, {model.info['items']:,} items"] = ndcg
        say(
            f"EASE λ={l2:g}, rows' half-life {half_life:g} d ({model.info['variant']}): "
            f"validation NDCG@20 {ndcg:.4f}"
        )
        if best is None or ndcg > best[0]:
            best = (ndcg, model)
        return model

    for l2 in grid:
        attempt(l2, 0.0)
    assert best is not None
    tried = list(grid)
    for _ in range(MAX_WIDENING if config.ease_l2 is None else 0):
        chosen_l2 = float(best[1].info["l2"])
        if chosen_l2 == max(tried):
            step = chosen_l2 * GRID_STEP
        elif chosen_l2 == min(tried) and chosen_l2 / GRID_STEP >= 1.0:
            step = chosen_l2 / GRID_STEP
        else:
            break
        tried.append(round(step, 1))
        attempt(tried[-1], 0.0)
    chosen_l2 = float(best[1].info["l2"])
    for half_life in HALF_LIVES[1:]:
        attempt(chosen_l2, half_life)
    chosen = best[1]
    if chosen.info["variant"] != "exact" and search_items < config.ease_max_items:
        chosen = attempt(chosen_l2, float(chosen.info["half_life_days"]), config.ease_max_items)
    return chosen, found


def _choose_decays(
    fitted: FittedSources,
    histories: Mapping[str, list[str]],
    relevant: dict[str, set[str]],
    say: Callable[[str], None],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Each neighbour source's recency decay (ml/retrieval.py), the one whose list alone scores best
    (ties: the flatter); the chosen decays and every score."""
    chosen: dict[str, float] = {}
    tried: dict[str, dict[str, float]] = {}
    for source, model in fitted.neighbour_models().items():
        best = (-1.0, 1.0)
        tried[source] = {}
        for decay, ndcg in _scored_alone(model, histories, relevant, RECENCY_DECAYS).items():
            tried[source][f"{decay:g}"] = ndcg
            if ndcg > best[0] + MIN_IMPROVEMENT:
                best = (ndcg, decay)
        chosen[source] = best[1]
        scores = ", ".join(f"{decay} {ndcg:.4f}" for decay, ndcg in tried[source].items())
        say(f"{source}: recency decay {best[1]:g} chosen (validation NDCG@20 by decay: {scores})")
    return chosen, tried


def validate(
    carved: Carve,
    config: SourcesConfig,
    fusion_fixed: bool,
    fit_generator: Callable[[Snapshot], object] | None,
    say: Callable[[str], None],
    seed: int = 0,
) -> Validation:
    """The validation stage (module docstring) on the carve `carved` (ml.validation.carve).
    `fusion_fixed`: the operator set the fusion; it is scored and reported but not searched."""
    say(f"validation: {carved.protocol} split, {len(carved.held):,} shoppers ({carved.reason})")
    histories = {user: carved.held[user].history for user in carved.held}
    scored_users = _sampled(carved.held, seed)
    if len(scored_users) < MIN_SHOPPERS:
        raise NothingToValidate(
            f"{len(scored_users)} validation shoppers, fewer than the {MIN_SHOPPERS} needed to choose on "
            f"({carved.reason})"
        )
    relevant = {user: carved.held[user].items for user in scored_users}
    ease, ease_scores = _choose_ease(
        carved.fit, {user: histories[user] for user in scored_users}, relevant, config, say
    )
    fitted = fit_sources(carved.fit, config, fit_generator, ease)
    decays, decays_tried = _choose_decays(
        fitted, {user: histories[user] for user in scored_users}, relevant, say
    )
    lists: Lists = source_lists(fitted, histories, CANDIDATES, decays)
    everyone = fit_popularity(carved.fit, 0.0)
    scoring: Lists = {}
    for user in scored_users:
        bought = set(histories[user])
        scoring[user] = {
            **lists[user],
            ALL_TIME_POPULAR: [
                Retrieved(item, ALL_TIME_POPULAR, score)
                for item, score, _ in everyone.top(CANDIDATES, bought)
            ],
        }
    servable = [s for s in sources.ALL if any(s in lists[u] for u in scored_users)]
    scorer = FusionScorer(scoring, relevant, [*servable, ALL_TIME_POPULAR])
    rows = [scorer.score(ALL_TIME_POPULAR, {ALL_TIME_POPULAR: 1.0})]
    start = {s: w for s, w in config.fusion.weights.items() if s in servable}
    if fusion_fixed:
        chosen = scorer.score("configured fusion (RECSYS_CANDIDATES_WEIGHTS)", start)
        rows.append(chosen)
    else:
        chosen, tried = search_weights(scorer, servable, start)
        rows += tried
        if all(chosen.weights != row.weights for row in tried):
            rows.append(chosen)
    weights = dict(config.fusion.weights)
    quotas = dict(config.fusion.quotas)
    dropped: dict[str, QuotaCheck] = {}
    if not fusion_fixed:
        # The generator keeps its configured weight when it was not fitted in this run.
        weights.update({s: 0.0 for s in UNSCORED})
        weights.update({s: float(chosen.weights.get(s, 0.0)) for s in servable})
        dropped = _unused_quotas({u: lists[u] for u in scored_users}, relevant, weights, quotas, servable)
        quotas.update({source: 0.0 for source in dropped})
        for source, check in dropped.items():
            say(
                f"{source} dropped: no weight in the fused order, and its quota adds no bought item to "
                f"the {CANDIDATES} candidates (recall {check.with_quota:.4f} with it, "
                f"{check.without:.4f} without)"
            )
    chosen_config = dataclasses.replace(
        config,
        fusion=Fusion(weights=weights, quotas=quotas),
        ease_l2=float(ease.info["l2"]),
        ease_half_life_days=float(ease.info["half_life_days"]),
        recency_decays=decays,
    )
    return Validation(carved, fitted, lists, chosen_config, chosen, rows, ease_scores, decays_tried, dropped)
