"""The simulator: seeded, streamed to files the generic importer reads, with ground truth."""

import gzip
import json
from collections import Counter

import numpy as np

from tools.importers import generic_csv
from tools.synth.sessions import CLICK, LIKE, REVIEW, SHARE, shopper_events
from tools.synth.shop import make_shop
from tools.synth.shoppers import affinity, respond, shopper
from tools.synth.writer import MAPPING, synthesize


def test_same_seed_same_files_and_the_importer_reads_them(tmp_path) -> None:
    first = synthesize(tmp_path / "a", shoppers=40, items=120, days=10, seed=3, dirt=0.0)
    again = synthesize(tmp_path / "b", shoppers=40, items=120, days=10, seed=3, dirt=0.0)
    assert first == again
    read = lambda folder: gzip.decompress((tmp_path / folder / "events.csv.gz").read_bytes())  # noqa: E731
    assert read("a") == read("b")
    events = list(generic_csv.read_events(tmp_path / "a" / "events.csv.gz", MAPPING))
    assert len(events) == first.events
    kinds = Counter(e.type for e in events)
    assert kinds[1] > kinds[2] > kinds[4] > 0  # the funnel narrows: views > clicks > purchases
    items = generic_csv.read_items(tmp_path / "a" / "items.csv", {f: f for f in generic_csv.ITEM_FIELDS})
    assert {i.domain for i in items} == {1, 2, 3}  # products, content and promotions
    assert json.loads((tmp_path / "a" / "truth.json").read_text())["seed"] == 3


def test_reviews_follow_satisfaction() -> None:
    from tools.synth.sessions import shopper_events
    from tools.synth.writer import START

    shop = make_shop(300, seed=5)
    ratings, affinities = [], []
    for number in range(400):
        person = shopper(5, number)
        for event in shopper_events(5, person, shop, START, 30):
            if event.type == REVIEW:
                index = int(event.item_id[1:])
                ratings.append(event.rating)
                affinities.append(affinity(person, shop, np.array([index]))[0])
    assert len(ratings) > 30
    assert np.corrcoef(ratings, affinities)[0, 1] > 0.3


def test_ground_truth_answers_any_slate_deterministically_and_by_taste() -> None:
    shop = make_shop(500, seed=9)
    clicks_liked, clicks_disliked = 0, 0
    for number in range(200):
        person = shopper(9, number)
        order = np.argsort(affinity(person, shop, np.arange(len(shop))))
        liked, disliked = order[-10:].tolist(), order[:10].tolist()
        assert respond(9, person, shop, liked, 0) == respond(9, person, shop, liked, 0)
        clicks_liked += sum(clicked for _, clicked, _ in respond(9, person, shop, liked, 1))
        clicks_disliked += sum(clicked for _, clicked, _ in respond(9, person, shop, disliked, 1))
    assert clicks_liked > 5 * max(clicks_disliked, 1)


def test_items_shown_over_and_over_get_fewer_clicks() -> None:
    shop = make_shop(500, seed=9)
    fresh, tired = 0, 0
    for number in range(300):
        person = shopper(9, number)
        liked = np.argsort(affinity(person, shop, np.arange(len(shop))))[-10:].tolist()
        fresh += sum(clicked for _, clicked, _ in respond(9, person, shop, liked, 1))
        tired += sum(clicked for _, clicked, _ in respond(9, person, shop, liked, 1, shown_before=[5] * 10))
    assert tired < 0.5 * fresh


def test_review_texts_grow_warmer_with_satisfaction() -> None:
    from tools.synth.reviews import TONES
    from tools.synth.sessions import shopper_events
    from tools.synth.writer import START

    shop = make_shop(300, seed=5)
    tones, satisfactions = [], []
    for number in range(400):
        for event in shopper_events(5, shopper(5, number), shop, START, 30):
            if event.type == REVIEW:
                found = [n for n, pool in enumerate(TONES) for phrase in pool if phrase in event.text]
                tones.append(np.mean(found))
                satisfactions.append(event.satisfaction)
    assert len(tones) > 30 and len(set(np.round(tones))) >= 3
    assert np.corrcoef(tones, satisfactions)[0, 1] > 0.5


def test_ratings_are_mostly_four_and_five_stars_but_not_all() -> None:
    from tools.synth.reviews import rating_of

    stars = [rating_of(s) for s in np.random.default_rng(0).normal(2.5, 1.0, size=2000)]
    shares = np.bincount(stars, minlength=6)[1:] / len(stars)
    assert shares[3] + shares[4] > 0.6 and shares[4] < 0.5 and shares[:3].sum() > 0.1


def test_likes_and_shares_follow_taste_and_leave_every_other_event_as_it_was() -> None:
    shop = make_shop(200, 4)
    plain, social = [], []
    for number in range(150):
        person = shopper(4, number)
        plain += list(shopper_events(4, person, shop, 1.7e9, 30))
        social += [(person, e) for e in shopper_events(4, person, shop, 1.7e9, 30, social=True)]
    assert [e for _, e in social if e.type not in (LIKE, SHARE)] == plain
    kinds = Counter(e.type for _, e in social)
    assert kinds[CLICK] > kinds[LIKE] > kinds[SHARE] > 0
    index = {item: n for n, item in enumerate(shop.item_ids.tolist())}
    taste = {
        kind: np.mean(
            [affinity(p, shop, np.array([index[e.item_id]]))[0] for p, e in social if e.type == kind]
        )
        for kind in (CLICK, LIKE, SHARE)
    }
    assert taste[SHARE] > taste[LIKE] > taste[CLICK]
