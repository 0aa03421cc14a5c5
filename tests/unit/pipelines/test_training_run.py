"""A training run chooses on validation and publishes what serving follows; a refused ranker changes
nothing that is served."""

from ml.artifacts import CANDIDATE_GAN, CANDIDATE_ORDER, LEARNED, RANKER, SERVING, ServingConfig
from ml.ease import EASE, EaseModel, binary_matrix, l2_grid
from ml.retrieval import DEFAULT_QUOTAS, RECENCY_DECAYS
from ml.selection import MIN_IMPROVEMENT
from pipelines.train import fit_and_publish
from pipelines.validation import ALL_TIME_POPULAR, MAX_WIDENING
from shared import sources
from shared.models import latest_version, publish
from tests.support import make_settings
from tests.unit.ml.test_validation import returning_shop


def test_a_run_publishes_the_fusion_it_chose_and_keeps_the_order_when_the_ranker_is_refused(tmp_path) -> None:
    settings = make_settings(str(tmp_path))
    snapshot = returning_shop()
    published = fit_and_publish(snapshot, settings, [EASE, "ranking", SERVING])
    assert RANKER not in published  # 80 shoppers: too few lists for the gate
    ease = EaseModel.load(settings.model_dir / EASE / str(published[EASE][0]))
    carved_grid = l2_grid(binary_matrix(*snapshot.events_where(snapshot.timestamps < 320).interactions())[1])
    first = ServingConfig.load(settings.model_dir / SERVING / str(published[SERVING][0]))
    tried = {float(key.split(",")[0].removeprefix("λ=")) for key in first.report["ease"]}
    assert set(carved_grid) <= tried  # the data's grid, fitted on the carve's fitting part
    assert ease.info["l2"] in tried  # chosen among what was tried
    if ease.info["l2"] == max(tried):
        assert len(tried) == len(carved_grid) + MAX_WIDENING  # widened while the best sat at the edge
    assert first.ranker == CANDIDATE_ORDER  # nothing served a ranker before
    report = first.report
    assert report["protocol"] == "time" and report["ranker"]["published"] is False
    names = [row["name"] for row in report["rows"]]
    assert ALL_TIME_POPULAR in names and f"{sources.EASE} alone" in names
    assert set(first.weights) == set(sources.ALL)
    assert first.weights[sources.ITEM_TEXT] == first.weights[sources.KNOWLEDGE_GRAPH] == 0.0
    decays = report["recency_decays"]
    assert first.recency_decays == decays["chosen"] and set(decays["tried"]) == {
        sources.ITEM_KNN,
        sources.EASE,
    }
    for source, tried in decays["tried"].items():  # the best each source scored alone, ties to the flatter
        assert tried[f"{first.recency_decays[source]:g}"] >= max(tried.values()) - MIN_IMPROVEMENT - 1e-5
        assert len(tried) == len(RECENCY_DECAYS)
    for source, recalls in report["dropped"].items():  # dropped: no weight, no quota, recall not lowered
        assert first.weights[source] == first.quotas[source] == 0.0
        assert (
            recalls["candidate_recall_at_200_with_its_quota"]
            <= recalls["candidate_recall_at_200_without"] + 1e-4
        )
    kept_quotas = {s for s, quota in first.quotas.items() if quota > 0}
    assert kept_quotas == {s for s in DEFAULT_QUOTAS if DEFAULT_QUOTAS[s] > 0} - set(report["dropped"])
    chosen = report["chosen"]["ndcg_at_20"]
    assert chosen >= max(row["ndcg_at_20"] for row in report["rows"] if row["name"] != ALL_TIME_POPULAR)

    publish(settings.model_dir, SERVING, ServingConfig(first.weights, first.quotas, LEARNED).save)
    again = fit_and_publish(snapshot, settings, ["ranking", SERVING])
    kept = ServingConfig.load(settings.model_dir / SERVING / str(again[SERVING][0]))
    assert kept.ranker == LEARNED and latest_version(settings.model_dir, RANKER) is None


def test_a_run_with_the_gan_trains_it_once_on_the_carve_and_once_on_everything(tmp_path, monkeypatch) -> None:
    """The GAN early-stopped on the validation carve gives validation its lists and the refit its
    epochs: two trainings in all (there were four: each step fitted its own in two stages)."""
    import ml.gan.train as gan_train

    trained_on: list[int] = []
    build = gan_train._Training.__init__

    def counted(self, matrix, config, strategy) -> None:  # type: ignore[no-untyped-def]
        trained_on.append(matrix.nnz)
        build(self, matrix, config, strategy)

    monkeypatch.setattr(gan_train._Training, "__init__", counted)
    settings = make_settings(str(tmp_path), RECSYS_CANDIDATES_GAN="1", RECSYS_GAN_MAX_MINUTES="2")
    snapshot = returning_shop()
    published = fit_and_publish(snapshot, settings, ["candidates", "ranking", SERVING])
    carved, everything = trained_on
    pairs = set(zip(snapshot.user_ids.tolist(), snapshot.item_ids.tolist(), strict=True))
    assert carved < everything == len(pairs)
    assert CANDIDATE_GAN in published
    report = ServingConfig.load(settings.model_dir / SERVING / str(published[SERVING][0])).report
    assert f"{sources.GENERATOR} alone" in [row["name"] for row in report["rows"]]
