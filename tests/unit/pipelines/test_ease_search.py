"""EASE's settings are searched on a narrower head than it serves, then fitted once on the whole head."""

from ml.candidates_offline import SourcesConfig
from ml.validation import carve
from pipelines import validation
from tests.unit.ml.test_validation import returning_shop


def test_the_settings_are_searched_on_the_search_head_and_the_chosen_ones_fitted_on_the_whole_head(
    monkeypatch,
) -> None:
    monkeypatch.setattr(validation, "SEARCH_MAX_ITEMS", 12)
    carved = carve(returning_shop(users=120, items=40))
    held = {user: carved.held[user] for user in sorted(carved.held)}
    relevant = {user: shopper.items for user, shopper in held.items()}
    histories = {user: shopper.history for user, shopper in held.items()}
    said: list[str] = []

    chosen, found = validation._choose_ease(
        carved.fit, histories, relevant, SourcesConfig(ease_max_items=30), said.append
    )

    searched = [key for key in found if key.endswith(" 12 items")]
    assert len(searched) == len(found) - 1 >= 3  # every setting tried on the search head, one more
    assert chosen.info["items"] == 30 and chosen.info["variant"] == "head of 30 most-bought items"
    best = max(searched, key=found.__getitem__)
    assert best.startswith(f"λ={chosen.info['l2']:g}, half-life {chosen.info['half_life_days']:g} d,")
    assert f"λ={chosen.info['l2']:g}, half-life {chosen.info['half_life_days']:g} d, 30 items" in found


def test_a_catalog_within_the_search_head_is_fitted_once_per_setting(monkeypatch) -> None:
    monkeypatch.setattr(validation, "SEARCH_MAX_ITEMS", 100)
    carved = carve(returning_shop(users=120, items=40))
    relevant = {user: shopper.items for user, shopper in carved.held.items()}
    histories = {user: shopper.history for user, shopper in carved.held.items()}

    chosen, found = validation._choose_ease(carved.fit, histories, relevant, SourcesConfig(), lambda _: None)

    assert chosen.info["variant"] == "exact" and all(
        key.endswith(f" {chosen.info['items']} items") for key in found
    )
