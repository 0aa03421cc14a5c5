"""The training pipeline's own settings section, read on top of shared.config."""

from __future__ import annotations

from dataclasses import dataclass, field

from ml.candidates_offline import SourcesConfig
from ml.ease import DEFAULT_MAX_ITEMS
from ml.gan import MAX_MEMORY_MB, MAX_MINUTES
from ml.ranking.config import RankerConfig
from ml.ranking.features import GROUPS
from ml.ranking.gate import PublishGate
from ml.retrieval import read_fusion
from ml.validation import AUTO, MODES
from shared.config import EnvReader, Settings, load_section

# A training run's default time budget: `recsys train all` on 200,000 purchases of 12,000 items
# fits in it on two cores; smaller shops never reach it.
TRAIN_MAX_MINUTES = 10.0


@dataclass(frozen=True)
class TrainingSettings:
    # How the candidate sources are fitted and fused (the same fusion the candidates service reads).
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    # RECSYS_POPULARITY_HALF_LIFE_DAYS when set; None: training chooses it on the snapshot's own
    # latest purchases (ml/popularity.py: choose_half_life) and `sources` carries the choice.
    popularity_half_life_days: float | None = None
    # Whether the ranker's training lists include the GAN's candidates (RECSYS_CANDIDATES_GAN).
    with_gan: bool = False
    gan_mixed_precision: bool = False
    # Training the GAN refuses to start above this estimated peak (docs/candidates.md).
    gan_max_memory_mb: int = MAX_MEMORY_MB
    # The GAN's training (validation stage and refit together) stops within about this long.
    gan_max_minutes: float = MAX_MINUTES
    # The whole training run's time budget (pipelines/budget.py); None: none.
    max_minutes: float | None = TRAIN_MAX_MINUTES
    # Weight of the GAN generator's adversarial term (0: a denoising autoencoder; an ablation).
    gan_adversarial: float = 1.0
    # Feature groups `recsys train ranking` leaves out (ml/ranking/features.py): a served ablation.
    ranker_left_out: tuple[str, ...] = ()
    # Seed of the ranker's training (initialization, batch order, the early-stopping share).
    ranker_seed: int = 0
    # Networks in the ranker's ensemble (ml/ranking/ensemble.py).
    ranker_members: int = RankerConfig.members
    # Carves nested in the validation carve's fitting part that add lists for the ranker to learn
    # from (ml/ranking/train.py: nested_lists); 0: the validation carve's lists alone.
    ranker_nested_carves: int = 3
    # A ranker is published only with this many lists to learn from and to validate on, and a
    # validation gain over its candidate order whose 95% interval lies above zero.
    ranker_gate: PublishGate = field(default_factory=PublishGate)
    # How the validation split is carved (ml/validation.py): auto, time, random or last.
    validation_mode: str = AUTO
    # RECSYS_CANDIDATES_WEIGHTS set: the operator's fusion is scored and served, not searched.
    fusion_fixed: bool = False


def read_training_settings(read: EnvReader) -> TrainingSettings:
    left_out = read.names("RECSYS_RANKER_LEFT_OUT")
    unknown = sorted(set(left_out) - set(GROUPS))
    if unknown:
        read.problems.append(
            f"RECSYS_RANKER_LEFT_OUT names unknown feature groups {unknown}; known: {', '.join(GROUPS)}"
        )
    half_life = read.number("RECSYS_POPULARITY_HALF_LIFE_DAYS", -1, 0, 3650)  # unset: chosen in training
    chosen = half_life if half_life >= 0 else None
    return TrainingSettings(
        sources=SourcesConfig(
            fusion=read_fusion(read),
            popularity_half_life_days=chosen
            if chosen is not None
            else SourcesConfig.popularity_half_life_days,
            ease_max_items=int(read.number("RECSYS_EASE_MAX_ITEMS", DEFAULT_MAX_ITEMS, 2, 100_000)),
        ),
        popularity_half_life_days=chosen,
        with_gan=read.flag("RECSYS_CANDIDATES_GAN", False),
        gan_mixed_precision=read.flag("RECSYS_GAN_MIXED_PRECISION", False),
        gan_max_memory_mb=int(read.number("RECSYS_GAN_MAX_MEMORY_MB", MAX_MEMORY_MB, 256, 1_048_576)),
        gan_max_minutes=read.number("RECSYS_GAN_MAX_MINUTES", MAX_MINUTES, 0.1, 10_080),
        max_minutes=read.number("RECSYS_TRAIN_MAX_MINUTES", TRAIN_MAX_MINUTES, 0, 10_080) or None,
        gan_adversarial=read.number("RECSYS_GAN_ADVERSARIAL", 1.0, 0.0, 100.0),
        ranker_left_out=left_out,
        ranker_seed=int(read.number("RECSYS_RANKER_SEED", 0, 0, 2**32 - 1)),
        ranker_members=int(read.number("RECSYS_RANKER_MEMBERS", RankerConfig.members, 1, 50)),
        ranker_nested_carves=int(read.number("RECSYS_RANKER_NESTED_CARVES", 3, 0, 5)),
        validation_mode=read.choice("RECSYS_VALIDATION", AUTO, MODES, str.lower),
        fusion_fixed=bool(read.env.get("RECSYS_CANDIDATES_WEIGHTS", "").strip()),
        ranker_gate=PublishGate(
            min_training_lists=int(
                read.number("RECSYS_RANKER_MIN_TRAINING_LISTS", PublishGate.min_training_lists, 1, 10**9)
            ),
            min_validation_lists=int(
                read.number("RECSYS_RANKER_MIN_VALIDATION_LISTS", PublishGate.min_validation_lists, 1, 10**9)
            ),
        ),
    )


def training_settings(settings: Settings) -> TrainingSettings:
    """The section for the process whose shared settings are `settings`; raises ConfigError."""
    return load_section(settings, read_training_settings)
