"""The training pipeline: export a snapshot through the services' streaming RPCs, fit, publish.

Training never reads another service's tables; it reads what ExportEvents and
ExportItems stream. Each fitted model is published as a new version under
`<home>/models/<name>/<version>/`, which the running services pick up.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml.artifacts import (
    CANDIDATE_GAN,
    CANDIDATE_ORDER,
    COOCCURRENCE,
    LEARNED,
    POPULARITY,
    RANKER,
    SERVING,
    ServingConfig,
)
from ml.candidates_offline import SourcesConfig
from ml.cooccurrence import fit_cooccurrence
from ml.deadline import Deadline, seconds_left
from ml.ease import EASE, fit_ease
from ml.event_weights import MODEL as EVENT_WEIGHTS
from ml.popularity import choose_half_life, fit_popularity
from ml.sentiment import MODEL as SENTIMENT
from ml.sentiment import SentimentModel, scored_reviews
from ml.snapshot import Snapshot, SnapshotWriter
from ml.text_encoder import ITEM_EMBEDDINGS
from ml.vae import USER_VAE
from ml.validation import MIN_SHOPPERS, Carve, carve
from pipelines.budget import RunBudget
from pipelines.event_weights import fit_published_event_weights
from pipelines.progress import console, errors, progress_bar
from pipelines.report import print_report, weights_text
from pipelines.sentiment import fit_review_sentiment
from pipelines.settings import TrainingSettings, training_settings
from pipelines.validation import NothingToValidate, QuotaCheck, Validation, validate
from recsys.items.v1 import items_pb2
from recsys.profile.v1 import profile_pb2
from shared import sources
from shared.clients import SuiteClients
from shared.config import Settings
from shared.models import latest_version, publish

if TYPE_CHECKING:  # TensorFlow: loaded only when the GAN or the ranker is trained
    from ml.gan.model import GanConfig
    from ml.gan.train import EpochCallback, TrainedGan
    from ml.ranking.train import RankingLists

EXPORT_DEADLINE_S = 1800.0
# Models that lost on validation are kept here, `<model_dir>/refused/<name>/<version>/`, never served.
REFUSED = "refused"
# The step that refits the candidate GAN; the least a GAN is given when the run's budget is spent.
GAN_REFIT = "candidates"
MIN_GAN_MINUTES = 0.1
# How much longer the ranker's learned views take to fit on every event than on the validation
# carve's fitting part (about 80% of them).
REFIT_PACE = 1.25


@dataclass(frozen=True)
class Trainer:
    """Fits one model from a snapshot; the result has a `save(folder)` method (None: nothing to publish).

    `served` models are the ones the running pipeline uses today: they are
    trained by `recsys up`, and the training command waits until the gateway
    reports the new versions of those that shape a Recommend answer
    (`in_recommend`).
    """

    model: str
    fit: Callable[[TrainingRun], object | None]
    served: bool = True
    in_recommend: bool = True
    # The share of the run's time budget kept for this step while earlier ones run (pipelines/budget.py).
    reserve: float = 0.0


@dataclass
class TrainingRun:
    """One training run over one snapshot: its settings, the validation carve and stage every
    chosen or gated model shares (computed once, when first needed), the candidate GAN fitted on
    that carve, and what the ranker's gate decided."""

    snapshot: Snapshot
    training: TrainingSettings
    model_dir: Path
    budget: RunBudget
    step: str = ""  # the step running now
    ranker_outcome: dict[str, object] | None = None  # None: the ranker was not trained in this run
    _carve: Carve | None = None
    _carve_gan: TrainedGan | None = None
    _carve_gan_tried: bool = False
    _validation: Validation | None = None

    def deadline(self) -> Deadline:
        """When the step running now has to be done (pipelines/budget.py)."""
        return self.budget.deadline(self.step)

    def gan_minutes(self, spent_s: float = 0.0) -> float:
        """The GAN's budget for both its stages: RECSYS_GAN_MAX_MINUTES, or less when the run's
        budget leaves less (with `spent_s` already spent on the GAN) before its refit step must be
        done; the carve's GAN is trained earlier, within validation, and shares that time."""
        step = GAN_REFIT if GAN_REFIT in self.budget.steps else self.step
        left = seconds_left(self.budget.deadline(step))
        if left is None:
            return self.training.gan_max_minutes
        return max(min(self.training.gan_max_minutes, (left + spent_s) / 60), MIN_GAN_MINUTES)

    def carve(self) -> Carve:
        """The validation carve (ml/validation.py), the same for every model of the run."""
        if self._carve is None:
            self._carve = carve(self.snapshot, self.training.validation_mode, seed=self.training.ranker_seed)
        return self._carve

    def carve_can_stop_a_gan(self) -> bool:
        """Whether the carve holds enough validation shoppers to early-stop the GAN on."""
        return len(self.carve().held) >= MIN_SHOPPERS

    def carve_gan(self) -> TrainedGan | None:
        """The candidate GAN fitted on the carve's fitting part and early-stopped on its held
        shoppers (ml/gan/train.py: fit_gan_on_carve); None when it cannot be trained (printed) or
        the carve holds too few shoppers to stop on."""
        carved = self.carve()
        if not self._carve_gan_tried and self.carve_can_stop_a_gan():
            from ml.gan.train import fit_gan_on_carve  # TensorFlow loads only when needed

            self._carve_gan_tried = True
            held = {user: shopper.items for user, shopper in carved.held.items()}
            self._carve_gan = _trained_gan(
                "on the validation carve's fitting part",
                self.training,
                self.gan_minutes(),
                lambda config, on_epoch: fit_gan_on_carve(carved.fit, held, config, on_epoch),
            )
        return self._carve_gan

    def validation(self) -> Validation | None:
        """The validation stage; None when no shopper could be held out (printed)."""
        if self._validation is None:
            training = self.training
            fit_generator = (lambda _fit: self.carve_gan()) if training.with_gan else None
            try:
                self._validation = validate(
                    self.carve(),
                    training.sources,
                    training.fusion_fixed,
                    fit_generator,
                    console.print,
                    seed=training.ranker_seed,
                )
            except NothingToValidate as error:
                console.print(f"[yellow]{error}: nothing is chosen, the defaults are served[/yellow]")
                return None
            print_report(self._validation.report())
        return self._validation

    def dropped_sources(self) -> dict[str, QuotaCheck]:
        """The sources this run's validation dropped, if it has run (it is not run for this)."""
        return self._validation.dropped if self._validation is not None else {}

    @property
    def sources(self) -> SourcesConfig:
        """The sources' configuration: as chosen on validation once that has run."""
        return self._validation.sources if self._validation is not None else self.training.sources


def _gan_config(settings: TrainingSettings, max_minutes: float) -> GanConfig:
    from ml.gan.model import GanConfig  # TensorFlow loads only when needed

    return GanConfig(
        mixed_precision=settings.gan_mixed_precision,
        max_memory_mb=settings.gan_max_memory_mb,
        max_minutes=max_minutes,
        adversarial=settings.gan_adversarial,
    )


def _trained_gan(
    what: str,
    settings: TrainingSettings,
    max_minutes: float,
    fit: Callable[[GanConfig, EpochCallback], TrainedGan],
) -> TrainedGan | None:
    """`fit(config, on_epoch)` within `max_minutes` under progress bars, its outcome printed;
    None when the memory bound refuses it (printed)."""
    from ml.gan.train import GanMemoryError

    config = _gan_config(settings, max_minutes)
    with progress_bar() as progress:
        tasks = {
            "validation": progress.add_task("candidate GAN, choosing the epochs", total=config.max_epochs),
            "refit": progress.add_task("candidate GAN, refit on every purchase", total=None),
        }

        def on_epoch(stage: str, epoch: int, d_loss: float, g_loss: float, recall: float | None) -> None:
            quality = "" if recall is None else f"val recall@20 {recall:.4f}, "
            progress.update(
                tasks[stage],
                completed=epoch,
                description=f"candidate GAN {stage} ({quality}D {d_loss:.3f}, G {g_loss:.3f})",
            )

        try:
            trained = fit(config, on_epoch)
        except GanMemoryError as error:
            errors.print(f"[red]candidate GAN not trained: {error}[/red]")
            return None
    console.print(
        f"candidate GAN {what}: best epoch {trained.epochs}, validation recall@20 "
        f"{trained.validation_recall:.4f}, {trained.seconds_per_epoch:.2f}s per epoch on "
        f"{trained.replicas} replica(s)"
        + (", mixed precision" if config.mixed_precision else "")
        + (f", cut short by its {config.max_minutes:.3g}-minute budget" if trained.budget_bound else "")
    )
    return trained


def fit_candidate_gan(
    snapshot: Snapshot, settings: TrainingSettings, max_minutes: float | None = None
) -> TrainedGan | None:
    """The GAN on `snapshot` alone, early-stopped on its own latest purchases, then refitted on
    all (ml/gan/train.py: fit_gan): for runs without a validation carve (`recsys eval`)."""
    from ml.gan.train import fit_gan

    return _trained_gan(
        "(own hold-out, then refit)",
        settings,
        settings.gan_max_minutes if max_minutes is None else max_minutes,
        lambda config, on_epoch: fit_gan(snapshot, config, on_epoch=on_epoch),
    )


def _served_gan(run: TrainingRun) -> TrainedGan | None:
    """The GAN to serve: the carve's GAN's epochs, refitted on every purchase, or the carve's GAN
    itself when the time budget leaves no room for one epoch on everything; without a carve GAN
    (too few validation shoppers), `fit_candidate_gan`. None when this run's validation dropped
    the generator (pipelines/validation.py): serving does not ask it, so it is not refitted."""
    if sources.GENERATOR in run.dropped_sources():
        console.print("candidate GAN not refitted: validation dropped it (above); serving does not ask it")
        return None
    chosen = run.carve_gan()
    if chosen is None:
        if run.carve_can_stop_a_gan():
            return None  # it could not be trained on the carve (printed): nor on everything
        return fit_candidate_gan(run.snapshot, run.training, run.gan_minutes())
    from ml.gan.train import refit_affordable, refit_gan

    minutes = run.gan_minutes(spent_s=chosen.seconds)
    left_s = minutes * 60 - chosen.seconds
    if not refit_affordable(run.snapshot, chosen, left_s):
        console.print(
            "candidate GAN: serving the one fitted on the validation carve (its best epoch): one epoch "
            f"on every purchase would take longer than the {max(left_s, 0):.0f}s the time budget leaves"
        )
        return chosen
    return _trained_gan(
        "refitted on every purchase",
        run.training,
        minutes,
        lambda config, on_epoch: refit_gan(run.snapshot, chosen, config, on_epoch=on_epoch),
    )


def _nested_lists(run: TrainingRun, validation: Validation, vocabulary: np.ndarray) -> RankingLists | None:
    """The ranker's extra lists to learn from, from carves nested in the validation carve's fitting
    part (ml/ranking/train.py: nested_lists); None when none are asked for or the GAN is in the run
    (it would have to be refitted for each carve)."""
    from ml.ranking.train import nested_lists

    count = run.training.ranker_nested_carves
    if count == 0:
        return None
    if run.training.with_gan:
        console.print(
            "ranker: no nested carves with the GAN in the run (it would be refitted for each); "
            "learning from the validation carve's lists alone"
        )
        return None

    def on_carve(number: int, inner: Carve) -> None:
        console.print(
            f"ranker: nested carve {number + 1}/{count} ({inner.protocol}, {len(inner.held):,} shoppers): "
            "fitting its sources and views for more lists to learn from"
        )

    more = nested_lists(validation.carve, run.sources, vocabulary, count, run.training.ranker_seed, on_carve)
    if more is None:
        console.print(
            "ranker: the nested carve has too few shoppers; learning from the validation carve alone"
        )
    return more


def _fit_ranker(run: TrainingRun) -> object | None:
    from ml.ranking.config import RankerConfig
    from ml.ranking.features import vocabulary_of
    from ml.ranking.train import RankerRefused, fit_ranker, published_table, training_lists
    from ml.ranking.views_train import ViewsConfig, fit_views

    settings = run.training
    validation = run.validation()
    if validation is None:
        run.ranker_outcome = {"published": False, "why": "no validation shoppers"}
        return None
    console.print(
        "ranker: learning from the validation shoppers' candidate lists (sources and learned views "
        "fitted on the rest), then the views on everything"
    )
    vocabulary = vocabulary_of(run.snapshot)
    started = time.monotonic()
    carve_views = fit_views(validation.carve.fit, vocabulary, ViewsConfig(), console.print)
    refit, networks_until = views_plan(run, time.monotonic() - started)
    lists, vocabulary = training_lists(
        run.snapshot,
        run.sources,
        None,
        validation=validation.carve,
        fitted=validation.fitted,
        found=validation.lists,
        vocabulary=vocabulary,
        learned=carve_views,
    )
    table = None if refit else published_table(run.snapshot, run.sources, vocabulary, learned=carve_views)
    more = _nested_lists(run, validation, vocabulary)
    config = RankerConfig(
        removed=settings.ranker_left_out, seed=settings.ranker_seed, members=settings.ranker_members
    )
    if config.removed:
        console.print(f"ranker: leaving out the feature groups {', '.join(config.removed)}")
    with progress_bar() as progress:
        task = progress.add_task("ranker", total=config.members * config.max_epochs)

        def on_epoch(member: int, epoch: int, loss: float, quality: float) -> None:
            progress.update(
                task,
                completed=member * config.max_epochs + epoch,
                description=(
                    f"ranker network {member + 1}/{config.members} "
                    f"(loss {loss:.3f}, early-stopping NDCG@20 {quality:.4f})"
                ),
            )

        try:
            trained = fit_ranker(
                run.snapshot,
                run.sources,
                lists,
                vocabulary,
                config,
                on_epoch,
                table=table,
                gate=settings.ranker_gate,
                more=more,
                deadline=networks_until,
            )
        except RankerRefused as error:
            run.ranker_outcome = {"published": False, "why": str(error)}
            if error.keep is not None:
                version = publish(run.model_dir / REFUSED, RANKER, error.keep)
                run.ranker_outcome["stored"] = str(run.model_dir / REFUSED / RANKER / str(version))
            console.print(
                f"[yellow]ranker not published: {error}; serving keeps its order "
                f"({_last_order(run.model_dir)})[/yellow]"
            )
            return None
    mean, low, high = trained.gain
    if trained.dropped:
        console.print(
            f"ranker: left out the feature groups {', '.join(trained.dropped)}: taken out of the trained "
            "ranker they surely raised validation NDCG@20, and the ranker retrained without them did no worse"
        )
    console.print(
        f"ranker: {len(trained.epochs)} networks from {trained.lists} lists, best epochs "
        f"{', '.join(map(str, trained.epochs))}, validation NDCG@20 "
        f"{trained.validation_ndcg:.4f} against {trained.candidate_ndcg:.4f} for the candidate order: "
        f"gain {mean:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}] over {trained.validation_lists} lists "
        f"({trained.validated_on})"
        + (f"; cut short by {run.budget.describe()}: {', '.join(trained.cut)}" if trained.cut else "")
    )
    run.ranker_outcome = {
        "published": True,
        "validation_ndcg_at_20": round(trained.validation_ndcg, 5),
        "candidate_order_ndcg_at_20": round(trained.candidate_ndcg, 5),
        "gain": [round(mean, 5), round(low, 5), round(high, 5)],
        "validation_lists": trained.validation_lists,
        "validated_on": trained.validated_on,
        "feature_groups_dropped": list(trained.dropped),
        "cut_by_time_budget": list(trained.cut),
    }
    return trained


def views_plan(run: TrainingRun, carve_views_s: float) -> tuple[bool, Deadline]:
    """Whether the ranker's learned views are fitted again on everything for serving, and until
    when its networks may train. The refit is planned when the step's deadline leaves room for it
    (REFIT_PACE times what the carve's views took) and as much again for the networks; else the
    views fitted on the carve are served as they are (printed) and the networks get all the time."""
    deadline = run.deadline()
    if deadline is None:
        return True, None
    left = max(deadline - time.monotonic(), 0.0)
    refit_s = REFIT_PACE * carve_views_s
    if left >= 2 * refit_s:
        return True, deadline - refit_s
    console.print(
        f"ranker: serving the learned views fitted on the validation carve: fitting them again on "
        f"everything would take about {refit_s:.0f}s, and {run.budget.describe()} leaves {left:.0f}s "
        "for that and the networks"
    )
    return False, deadline


def _fit_text_encoder(run: TrainingRun) -> object:
    from ml.text_train import TextEncoderConfig, fit_text_encoder  # loads TensorFlow

    snapshot = run.snapshot
    users, items = snapshot.interactions()
    order = np.argsort(snapshot.interaction_times(), kind="stable")
    config = TextEncoderConfig()
    with progress_bar() as progress:
        task = progress.add_task("item text encoder", total=config.epochs)
        trained = fit_text_encoder(
            snapshot.catalog_item_ids,
            snapshot.item_texts,
            users[order],
            items[order],
            config,
            on_epoch=lambda epoch, loss: progress.update(
                task, completed=epoch, description=f"item text encoder (co-purchase loss {loss:.3f})"
            ),
        )
    console.print(
        f"item text encoder: {len(trained.vocabulary)} words, {len(trained.item_ids)} items encoded"
    )
    return trained


def _fit_user_vae(run: TrainingRun) -> object:
    from ml.vae_train import VaeConfig, fit_vae  # loads TensorFlow

    users, items = run.snapshot.interactions()
    config = VaeConfig()
    with progress_bar() as progress:
        task = progress.add_task("user VAE", total=config.epochs)
        trained = fit_vae(
            users,
            items,
            config,
            on_epoch=lambda epoch, loss, recall: progress.update(
                task,
                completed=epoch,
                description=f"user VAE (loss {loss:.1f}, held-out recall@20 {recall:.4f})",
            ),
            deadline=run.deadline(),
        )
    console.print(
        f"user VAE: best epoch {trained.epochs}, held-out recall@20 {trained.validation_recall:.4f} "
        f"(most popular {trained.popular_recall:.4f}), {trained.encoder.dim}-dim latent"
        + (f", cut short by {run.budget.describe()}" if trained.cut else "")
    )
    return trained


def _fit_ease(run: TrainingRun) -> object:
    validation = run.validation()  # chooses the regularization and the rows' half-life
    config = run.sources
    model = fit_ease(run.snapshot, config.ease_l2, config.ease_max_items, config.ease_half_life_days)
    chosen = "" if validation is None else " (chosen on validation)"
    console.print(
        f"EASE: λ={model.info['l2']:g}, rows' half-life {model.info['half_life_days']:g} days{chosen}, "
        f"{model.info['variant']}, {model.info['items']:,} items"
    )
    return model


def _serving_config(run: TrainingRun) -> object | None:
    """What the pipeline serves: the fusion chosen on validation, and the learned ranker when its gate
    passed in this run; else the order served so far (the fused candidate order at first)."""
    validation = run.validation()
    if validation is None:
        return None
    published = run.ranker_outcome is not None and run.ranker_outcome["published"]
    order = LEARNED if published else _last_order(run.model_dir)
    fusion = run.sources.fusion
    report = {**validation.report(), "ranker": run.ranker_outcome or {"trained": False}, "order": order}
    console.print(f"serving: {order} over the fusion {weights_text(fusion.weights)}")
    decays = dict(run.sources.recency_decays)
    return ServingConfig(dict(fusion.weights), dict(fusion.quotas), order, report, decays)


def _last_order(model_dir: Path) -> str:
    version = latest_version(model_dir, SERVING)
    if version is None:
        return CANDIDATE_ORDER
    return ServingConfig.load(model_dir / SERVING / str(version)).ranker


TRAINERS: dict[str, Trainer] = {
    # Scores review texts without a rating in the portrait; published only where it beats the
    # opinion-word rule on held-out rated reviews (pipelines/sentiment.py). Not served: `recsys up`
    # retrains when a served model is missing, and a shop without rated reviews never publishes it.
    # First: the ranker's review features read the reviews it scores (fit_and_publish).
    "review-sentiment": Trainer(
        SENTIMENT,
        lambda run: fit_review_sentiment(run.snapshot),
        served=False,
        in_recommend=False,
        reserve=0.02,
    ),
    # How much each event type counts in the portrait's affinities, learned from which categories
    # shoppers bought next (pipelines/event_weights.py); not served, as review-sentiment.
    "event-weights": Trainer(
        EVENT_WEIGHTS,
        lambda run: fit_published_event_weights(run.snapshot),
        served=False,
        in_recommend=False,
        reserve=0.02,
    ),
    POPULARITY: Trainer(
        POPULARITY, lambda run: fit_popularity(run.snapshot, run.sources.popularity_half_life_days)
    ),
    COOCCURRENCE: Trainer(COOCCURRENCE, lambda run: fit_cooccurrence(run.snapshot), reserve=0.01),
    # Closed-form item-item regression (exact up to RECSYS_EASE_MAX_ITEMS items, else over the head).
    # Its step also runs the validation stage (the carve's GAN included), which every later model reads.
    EASE: Trainer(EASE, _fit_ease, reserve=0.15),
    # The GAN candidate generator, served through TF Serving's API when the suite runs with it
    # (`recsys up --gan`); minutes of training on CPU, so `recsys up` does not train it.
    GAN_REFIT: Trainer(CANDIDATE_GAN, _served_gan, served=False, reserve=0.1),
    # The item text encoder behind items.SimilarItems and the item-text candidate source.
    "items-text": Trainer(ITEM_EMBEDDINGS, _fit_text_encoder, reserve=0.06),
    # The shoppers' latent vectors in GetProfile (the ranker fits its own copy of the VAE).
    "profile-vae": Trainer(USER_VAE, _fit_user_vae, in_recommend=False, reserve=0.06),
    # Learns from the validation shoppers' candidate lists: trained after the sources it reorders.
    # It fits its own text encoder, user VAE and graph embeddings (ml/ranking/views.py).
    "ranking": Trainer(RANKER, _fit_ranker, reserve=0.35),
    # The fusion and the order chosen on validation, with the report behind them: trained last.
    SERVING: Trainer(SERVING, _serving_config),
}
SERVED = [name for name, trainer in TRAINERS.items() if trainer.served]


async def export_snapshot(clients: SuiteClients, snapshot_dir: Path) -> Snapshot:
    folder = snapshot_dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    writer = SnapshotWriter(folder)
    with progress_bar() as progress:
        task = progress.add_task("export events", total=None)
        async for batch in clients.profile.ExportEvents(
            profile_pb2.ExportEventsRequest(), timeout=EXPORT_DEADLINE_S
        ):
            writer.add_events(batch.events)
            progress.advance(task, len(batch.events))
        task = progress.add_task("export items", total=None)
        async for batch in clients.items.ExportItems(
            items_pb2.ExportItemsRequest(), timeout=EXPORT_DEADLINE_S
        ):
            writer.add_items(batch.items)
            progress.advance(task, len(batch.items))
    return writer.write()


def with_chosen_half_life(training: TrainingSettings, snapshot: Snapshot) -> TrainingSettings:
    """`training` with the popularity half-life it names, or else the one the snapshot's own latest
    purchases prefer (every model that reads popularity then uses that one)."""
    if training.popularity_half_life_days is not None:
        return training
    chosen, scores = choose_half_life(snapshot)
    if scores:
        tried = ", ".join(f"{half_life:g} d {ndcg:.4f}" for half_life, ndcg in scores.items())
        console.print(
            f"popularity half-life {chosen:g} days (0: all-time), chosen on the latest 20% of the "
            f"purchases; NDCG@20 of each: {tried}"
        )
    sources = dataclasses.replace(training.sources, popularity_half_life_days=chosen)
    return dataclasses.replace(training, sources=sources, popularity_half_life_days=chosen)


def published_sentiment(model_dir: Path) -> SentimentModel | None:
    """The latest published review sentiment classifier, if any."""
    version = latest_version(model_dir, SENTIMENT)
    return None if version is None else SentimentModel.load(model_dir / SENTIMENT / str(version))


def fit_and_publish(
    snapshot: Snapshot, settings: Settings, names: list[str], started: float | None = None
) -> dict[str, tuple[int, float]]:
    """Fits each named model, in the order of TRAINERS (a model may read those before it); returns
    name -> (published version, seconds spent). Reviews are scored by the published sentiment
    classifier, by the one this run publishes from then on. The run's time budget counts from
    `started` (time.monotonic(); by default now), so that it can include the snapshot's export."""
    training = training_settings(settings)
    names = sorted(names, key=list(TRAINERS).index)
    budget = RunBudget(
        None if training.max_minutes is None else training.max_minutes * 60,
        {name: trainer.reserve for name, trainer in TRAINERS.items()},
        names,
        time.monotonic() if started is None else started,
    )
    run = TrainingRun(
        scored_reviews(snapshot, published_sentiment(settings.model_dir)),
        with_chosen_half_life(training, snapshot),
        settings.model_dir,
        budget,
    )
    console.print(f"training {len(names)} steps within {budget.describe()}")
    published = {}
    begun = time.perf_counter()
    for step, name in enumerate(names, start=1):
        trainer = TRAINERS[name]
        started = time.perf_counter()
        console.print(f"[bold]step {step}/{len(names)}: {name}[/bold] ({started - begun:.0f}s into training)")
        run.step = name
        model = trainer.fit(run)
        if model is None:
            console.print(f"step {step}/{len(names)}: {name}: nothing published")
            continue
        version = publish(
            settings.model_dir,
            trainer.model,
            model.save,  # type: ignore[attr-defined]
            keep=settings.model_versions_kept,
        )
        published[trainer.model] = (version, time.perf_counter() - started)
        if trainer.model == SENTIMENT:
            run.snapshot = scored_reviews(run.snapshot, model)  # type: ignore[arg-type]
        console.print(f"step {step}/{len(names)}: {name} done in {time.perf_counter() - started:.1f}s")
    return published
