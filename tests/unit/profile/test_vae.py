"""The user VAE: it learns simulated shoppers' tastes, and GetProfile applies it to the current history."""

import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from ml.vae import USER_VAE, UserEncoder
from ml.vae_train import TrainedVae, VaeConfig, fit_vae
from recsys.common.v1 import common_pb2
from recsys.profile.v1 import profile_pb2, profile_pb2_grpc
from services.profile.app import build
from shared.models import publish
from tests.support import ServerThread, make_settings
from tools.synth.sessions import CLICK, PURCHASE, shopper_events
from tools.synth.shop import make_shop
from tools.synth.shoppers import shopper
from tools.synth.writer import START

SEED = 4


def clicks_and_purchases(items: int, shoppers: int) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of the simulated shoppers' clicks and purchases over 30 days."""
    shop = make_shop(items, SEED)
    rows = [
        (event.user_id, event.item_id)
        for number in range(shoppers)
        for event in shopper_events(SEED, shopper(SEED, number), shop, START, 30)
        if event.type in (CLICK, PURCHASE)
    ]
    return np.array([user for user, _ in rows]), np.array([item for _, item in rows])


@pytest.fixture(scope="module")
def trained() -> TrainedVae:
    users, items = clicks_and_purchases(200, 400)
    config = VaeConfig(
        hidden=64, latent=8, epochs=60, batch_size=32, learning_rate=3e-3, patience=10, holdout_share=0.2
    )
    return fit_vae(users, items, config)


def test_the_vae_recalls_held_out_items_better_than_most_popular(trained: TrainedVae) -> None:
    assert trained.validation_recall > 1.2 * trained.popular_recall, (
        trained.validation_recall,
        trained.popular_recall,
    )
    assert trained.encoder.dim == 8


def test_the_latent_ignores_unknown_items_and_needs_one_known(trained: TrainedVae) -> None:
    encoder = trained.encoder
    known = encoder.item_ids[:3].tolist()
    assert encoder.latent(["nobody-knows"]) is None
    np.testing.assert_allclose(encoder.latent([*known, "nobody-knows"]), encoder.latent(known))
    assert encoder.latent(known).shape == (8,)


def test_a_new_event_changes_the_next_latent_vector(
    tmp_path: Path, database_url: str, trained: TrainedVae
) -> None:
    settings = make_settings(
        str(tmp_path), RECSYS_PROFILE_DATABASE_URL=database_url, RECSYS_MODEL_POLL_S="0.1"
    )
    server = ServerThread(build, settings)
    items = trained.encoder.item_ids.tolist()
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = profile_pb2_grpc.ProfileServiceStub(channel)

            def buy(number: int, item: str) -> profile_pb2.Profile:
                event = common_pb2.Event(
                    event_id=f"e{number}", user_id="u", item_id=item, type=common_pb2.EVENT_TYPE_PURCHASE
                )
                stub.RecordEvents(iter([profile_pb2.RecordEventsRequest(events=[event])]), timeout=10)
                return stub.GetProfile(profile_pb2.GetProfileRequest(user_id="u"), timeout=5).profile

            untrained = buy(0, items[0])
            assert list(untrained.latent) == [] and untrained.latent_model.version == 0
            version = publish(settings.model_dir, USER_VAE, trained.encoder.save)
            for _ in range(100):
                first = stub.GetProfile(profile_pb2.GetProfileRequest(user_id="u"), timeout=5).profile
                if first.latent_model.version == version:
                    break
                time.sleep(0.05)
            assert first.latent_model.name == USER_VAE and first.latent_model.version == version
            np.testing.assert_allclose(first.latent, trained.encoder.latent([items[0]]), rtol=1e-5)
            second = buy(1, items[1])
            assert len(second.latent) == 8
            assert np.linalg.norm(np.array(second.latent) - np.array(first.latent)) > 1e-3
            np.testing.assert_allclose(second.latent, trained.encoder.latent(items[:2]), rtol=1e-5)
    finally:
        server.stop()


def test_the_encoder_survives_save_and_load(tmp_path: Path, trained: TrainedVae) -> None:
    trained.encoder.save(tmp_path)
    loaded = UserEncoder.load(tmp_path)
    items = trained.encoder.item_ids[:5].tolist()
    np.testing.assert_allclose(loaded.latent(items), trained.encoder.latent(items))


def test_past_its_deadline_the_vae_stops_after_the_epoch_it_is_in() -> None:
    users, items = clicks_and_purchases(60, 120)
    config = VaeConfig(hidden=16, latent=4, epochs=5, patience=5)
    late = fit_vae(users, items, config, deadline=time.monotonic() - 1)
    assert (late.epochs, late.cut) == (1, True)
    assert fit_vae(users, items, config).cut is False
