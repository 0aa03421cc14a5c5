"""The review sentiment trainer publishes the classifier only where it beats the opinion-word rule
on held-out rated reviews, and a running profile service scores unrated reviews with it."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np

from ml.sentiment import MODEL, SentimentModel
from ml.snapshot import SnapshotWriter
from pipelines import train as pipeline
from pipelines.sentiment import fit_review_sentiment
from recsys.common.v1 import common_pb2
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from services.profile.app import build
from shared.models import publish
from tests.support import ServerThread, make_settings
from tools.synth.reviews import rating_of, review_text


def _snapshot(folder: Path, texts: list[str], ratings: list[int]):
    writer = SnapshotWriter(folder)
    events = []
    for n, (text, rating) in enumerate(zip(texts, ratings, strict=True)):
        review = common_pb2.Event(
            event_id=f"r{n}",
            user_id=f"u{n}",
            item_id="i1",
            type=common_pb2.EVENT_TYPE_REVIEW,
            rating=rating,
            text=text,
        )
        review.timestamp.FromSeconds(1_700_000_000 + n)
        events += [
            review,
            common_pb2.Event(
                event_id=f"v{n}", user_id=f"u{n}", item_id="i1", type=common_pb2.EVENT_TYPE_VIEW
            ),
        ]
    writer.add_events(events)
    writer.add_items([common_pb2.Item(item_id="i1", title="Thing")])
    return writer.write()


def test_a_classifier_that_reads_the_tone_better_than_the_word_rule_is_published(tmp_path: Path) -> None:
    satisfaction = np.random.default_rng(0).normal(2.5, 1.2, size=1500)
    texts = [review_text(0, n, n, float(s)) for n, s in enumerate(satisfaction)]
    snapshot = _snapshot(tmp_path / "s", texts, [rating_of(float(s)) for s in satisfaction])
    assert snapshot.reviews()[0] == texts  # review texts travel with the snapshot, views add none
    model = fit_review_sentiment(snapshot)
    assert model is not None
    assert model.scores(["Absolutely love it!"])[0] > model.scores(["Broke after one use."])[0]


def test_where_the_word_rule_already_reads_every_review_nothing_is_published(tmp_path: Path) -> None:
    texts = ["love it" if n % 2 else "awful" for n in range(400)]
    ratings = [5 if n % 2 else 1 for n in range(400)]
    assert fit_review_sentiment(_snapshot(tmp_path / "s", texts, ratings)) is None


def test_too_few_rated_reviews_train_nothing(tmp_path: Path) -> None:
    assert fit_review_sentiment(_snapshot(tmp_path / "s", ["fine"] * 30, [5] * 30)) is None


def test_the_profile_service_scores_an_unrated_review_with_the_published_classifier(tmp_path: Path) -> None:
    settings = make_settings(str(tmp_path))
    vocabulary = np.array(["gorgeous", "dreadful"])
    publish(
        settings.model_dir,
        MODEL,
        SentimentModel(vocabulary, np.array([3.0, -3.0], dtype=np.float32), 0.0).save,
    )
    server = ServerThread(build, settings)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = profile_pb2_grpc.ProfileServiceStub(channel)
            review = common_pb2.Event(
                event_id="r1",
                user_id="u1",
                item_id="i1",
                type=common_pb2.EVENT_TYPE_REVIEW,
                text="Gorgeous lamp",
            )
            review.timestamp.FromSeconds(1_700_000_000)
            stub.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=[review])]), timeout=10)
            portrait = stub.GetProfile(
                profile_pb2.GetProfileRequest(user_id="u1"), timeout=10
            ).profile.portrait
    finally:
        server.stop()
    # "gorgeous" is no opinion word of the rule (it would say nothing); the classifier says 2 sigmoid(3) - 1
    assert abs(portrait.review_sentiment - (2 / (1 + np.exp(-3.0)) - 1)) < 1e-6


def test_recsys_up_does_not_wait_for_models_a_shop_may_never_publish() -> None:
    from pipelines.train import SERVED, TRAINERS

    # `recsys up` retrains the served models whenever one of them is missing
    for name in ("review-sentiment", "event-weights"):
        assert name in TRAINERS and name not in SERVED


def test_the_models_trained_after_the_classifier_read_the_reviews_it_scored(
    tmp_path: Path, monkeypatch
) -> None:
    satisfaction = np.random.default_rng(0).normal(2.5, 1.2, size=1500)
    texts = [review_text(0, n, n, float(s)) for n, s in enumerate(satisfaction)]
    ratings = [rating_of(float(s)) if n < 1200 else 0 for n, s in enumerate(satisfaction)]
    snapshot = _snapshot(tmp_path / "s", texts, ratings)
    seen: list[np.ndarray] = []
    probe = pipeline.Trainer("probe", lambda run: seen.append(run.snapshot.sentiments))
    monkeypatch.setattr(
        pipeline, "TRAINERS", {"review-sentiment": pipeline.TRAINERS["review-sentiment"], "probe": probe}
    )
    settings = make_settings(str(tmp_path))
    published = pipeline.fit_and_publish(
        snapshot, settings, ["probe", "review-sentiment"]
    )  # run in TRAINERS order
    assert MODEL in published
    model = SentimentModel.load(settings.model_dir / MODEL / str(published[MODEL][0]))
    unrated = np.flatnonzero(snapshot.types == common_pb2.EVENT_TYPE_REVIEW)[1200:]
    np.testing.assert_allclose(seen[0][unrated], model.scores(texts[1200:]), atol=1e-6)
