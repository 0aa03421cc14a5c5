"""Promotion allocation on simulated shoppers, scored against the simulator's truth.

Per seed: a simulated shop and its shoppers' history, folded into the same portraits the profile
service keeps; a promotion catalog of coupons and activities. First a randomized trial (no model
yet: random pairs, half held out) whose outcomes are drawn from the truth; the uplift model learns
from its logs. Then, at one budget and under the same rules, three allocations of the next window:
random pairs and "most likely buyers" (baselines), and the uplift allocation as the product runs it
(with its exploration share and holdout). Each is scored by the truth's expected incremental
margin of the offers it sends, per unit of budget; intervals come from the bootstrap over sent
offers, combined over seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml.promotions.allocate import (
    LIKELY_BUYERS_BASELINE,
    RANDOM_BASELINE,
    TRIAL,
    UPLIFT,
    Candidate,
    Decision,
    Rules,
    allocate,
    held_out,
    spent,
)
from ml.promotions.features import ShopperFacts, features
from ml.promotions.offers import ACTIVITY, COUPON, Offer
from ml.promotions.offpolicy import LoggedMargin, incremental_margin_per_offer
from ml.promotions.uplift import LoggedOutcome, UpliftModel
from services.profile.portrait import ItemFacts, Portrait
from tools.synth.promotions import MARGIN_RATE, Category, buy_chances, categories, outcome
from tools.synth.sessions import PURCHASE, shopper_events
from tools.synth.shop import Shop, make_shop
from tools.synth.shoppers import Shopper, shopper

START = 1_700_000_000.0
HISTORY_DAYS = 90
HALF_LIFE_S = 30 * 86_400.0
TOP_CATEGORIES = 20
COMPARED = (RANDOM_BASELINE, LIKELY_BUYERS_BASELINE, UPLIFT)
# The uplift allocation given the truth's own chances: what a perfect model would earn.
CEILING = "truth-ceiling"


@dataclass(frozen=True)
class Setup:
    shoppers: int = 3000
    items: int = 600
    coupons: int = 6
    activities: int = 2
    trial_budget: float = 4000.0
    budget: float = 1000.0
    per_shopper_cap: int = 1
    holdout_share: float = 0.1
    explore_share: float = 0.1


@dataclass(frozen=True)
class World:
    seed: int
    shop: Shop
    people: list[Shopper]
    facts: list[ShopperFacts]
    offers: list[Offer]
    categories: dict[str, Category]


def promotion_catalog(shop: Shop, seed: int, setup: Setup) -> tuple[list[Offer], dict[str, Category]]:
    """Coupons of 10-30 % off (capped near a third of the basket) and activities with a capacity,
    each on a category with products."""
    rng = np.random.default_rng([seed, 11])
    found = {">".join(path): category for path, category in categories(shop).items()}
    names = sorted(found)
    chosen = rng.choice(len(names), size=setup.coupons + setup.activities, replace=False)
    offers = []
    for n, index in enumerate(chosen.tolist()):
        name = names[index]
        price = found[name].price
        if n < setup.coupons:
            percent = float(rng.choice([0.1, 0.2, 0.3]))
            offers.append(
                Offer(
                    f"C{n}",
                    COUPON,
                    name,
                    f"{int(percent * 100)}% off {name.split('>')[1]}",
                    percent,
                    round(price * 0.35, 2),
                )
            )
        else:
            offers.append(
                Offer(
                    f"A{n}",
                    ACTIVITY,
                    name,
                    f"{name.split('>')[1]} workshop",
                    cost=round(0.05 * price, 2),
                    capacity=400,
                )
            )
    return offers, found


def _facts(seed: int, person: Shopper, shop: Shop, index: dict[str, int]) -> ShopperFacts:
    """The shopper's portrait after their simulated history, folded as the profile service does."""
    portrait = Portrait()
    purchases = 0
    now = START + HISTORY_DAYS * 86_400.0
    for event in shopper_events(seed, person, shop, START, HISTORY_DAYS):
        n = index[event.item_id]
        facts = ItemFacts(">".join(shop.category_paths[n]), shop.brands[n], float(shop.prices[n]))
        portrait.fold(event.type, event.timestamp, facts, None, HALF_LIFE_S)
        purchases += event.type == PURCHASE
    view = portrait.view(now, HALF_LIFE_S, TOP_CATEGORIES)
    return ShopperFacts(
        user_id=person.user_id,
        categories=dict(view.categories),
        typical_price=view.typical_price,
        price_low=view.price_low,
        price_high=view.price_high,
        events_per_day=view.events_per_day,
        purchase_count=purchases,
    )


def world(seed: int, setup: Setup) -> World:
    shop = make_shop(setup.items, seed)
    people = [shopper(seed, n) for n in range(setup.shoppers)]
    offers, found = promotion_catalog(shop, seed, setup)
    index = {str(item_id): n for n, item_id in enumerate(shop.item_ids)}
    return World(seed, shop, people, [_facts(seed, p, shop, index) for p in people], offers, found)


def _truth(w: World) -> dict[tuple[str, str], tuple[float, float]]:
    return {
        (person.user_id, offer.offer_id): buy_chances(person, w.shop, offer, w.categories[offer.category])
        for person in w.people
        for offer in w.offers
    }


def _candidates(w: World, chances: Callable[[ShopperFacts, Offer], tuple[float, float]]) -> list[Candidate]:
    return [
        Candidate(facts.user_id, offer, w.categories[offer.category].price, *chances(facts, offer))
        for facts in w.facts
        for offer in w.offers
    ]


def true_value(decision: Decision, truth: dict[tuple[str, str], tuple[float, float]]) -> float:
    """The truth's expected incremental margin of one sent offer."""
    c = decision.candidate
    without, with_offer = truth[(c.user_id, c.offer.offer_id)]
    return Candidate(c.user_id, c.offer, c.basket_price, without, with_offer).expected_incremental_margin(
        MARGIN_RATE
    )


@dataclass(frozen=True)
class SeedResult:
    seed: int
    values: dict[str, np.ndarray]  # per compared allocation: the truth's value of each sent offer
    spent: dict[str, float]
    offers_sent: dict[str, int]
    # The uplift policy's incremental margin per offer on the trial's pairs: estimated off-policy
    # from the logs (cross-fitted) beside the truth, to check the estimator.
    off_policy: dict[str, float]
    model_rows: tuple[int, int]


@dataclass(frozen=True)
class TrialRow:
    decision: Decision
    outcome: LoggedOutcome
    margin: LoggedMargin


def _trial(w: World, truth: dict[tuple[str, str], tuple[float, float]], setup: Setup) -> list[TrialRow]:
    """The first plan, before any model: random pairs, half of the shoppers held out."""
    rules = Rules(budget=setup.trial_budget, per_shopper_cap=1, holdout_share=0.5, margin_rate=MARGIN_RATE)
    decisions = allocate(f"trial-{w.seed}", TRIAL, _candidates(w, lambda f, o: (0.0, 0.0)), rules, w.seed)
    people = {person.user_id: person for person in w.people}
    facts = {f.user_id: f for f in w.facts}
    rows = []
    for d in decisions:
        c = d.candidate
        bought = outcome(w.seed, people[c.user_id], c.offer, truth[(c.user_id, c.offer.offer_id)], d.sent)
        sale = MARGIN_RATE * c.basket_price if bought else 0.0
        taken = (c.offer.discount(c.basket_price) if bought else 0.0) + c.offer.cost
        rows.append(
            TrialRow(
                d,
                LoggedOutcome(
                    features(facts[c.user_id], c.offer, c.basket_price), d.sent, d.propensity, bought
                ),
                LoggedMargin(d.sent, d.propensity, sale - taken if d.sent else sale),
            )
        )
    return rows


def _worth_sending(model: UpliftModel, row: TrialRow) -> bool:
    without, with_offer = model.chances(row.outcome.features)
    c = row.decision.candidate
    candidate = Candidate(c.user_id, c.offer, c.basket_price, float(without[0]), float(with_offer[0]))
    return candidate.expected_incremental_margin(MARGIN_RATE) > 0


def _off_policy(rows: list[TrialRow], truth: dict[tuple[str, str], tuple[float, float]], seed: int) -> dict:
    """Cross-fitted: a model fitted on each half of the shoppers chooses among the other half's
    pairs, so the estimate never scores a choice on the outcomes that shaped it."""
    folds = [
        [r for r in rows if held_out(f"fold-{seed}", r.decision.candidate.user_id, 0.5) == k] for k in (0, 1)
    ]
    chosen, truths = [], []
    for fit_on, score_on in ((folds[0], folds[1]), (folds[1], folds[0])):
        model = UpliftModel.fit([r.outcome for r in fit_on])
        for row in score_on:
            keep = _worth_sending(model, row)
            chosen.append((row.margin, keep))
            if keep:
                truths.append(true_value(row.decision, truth))
    estimate = incremental_margin_per_offer(
        [m for m, _ in chosen], np.array([k for _, k in chosen]), seed=seed
    )
    return {
        "estimated": estimate.value,
        "low": estimate.low,
        "high": estimate.high,
        "true": float(np.mean(truths)) if truths else 0.0,
        "pairs": estimate.pairs,
    }


def run_seed(seed: int, setup: Setup) -> SeedResult:
    w = world(seed, setup)
    truth = _truth(w)
    rows = _trial(w, truth, setup)
    model = UpliftModel.fit([r.outcome for r in rows])

    def predicted(facts: ShopperFacts, offer: Offer) -> tuple[float, float]:
        without, with_offer = model.chances(features(facts, offer, w.categories[offer.category].price))
        return float(without[0]), float(with_offer[0])

    scored = _candidates(w, predicted)
    rules = Rules(
        budget=setup.budget,
        per_shopper_cap=setup.per_shopper_cap,
        holdout_share=setup.holdout_share,
        margin_rate=MARGIN_RATE,
        explore_share=setup.explore_share,
    )
    values, spent_by, sent_by = {}, {}, {}
    known = _candidates(w, lambda f, o: truth[(f.user_id, o.offer_id)])
    for name, policy, pool in (*((p, p, scored) for p in COMPARED), (CEILING, UPLIFT, known)):
        decisions = [d for d in allocate(f"window-{seed}", policy, pool, rules, seed) if d.sent]
        values[name] = np.array([true_value(d, truth) for d in decisions])
        spent_by[name] = spent(decisions)
        sent_by[name] = len(decisions)
    return SeedResult(seed, values, spent_by, sent_by, _off_policy(rows, truth, seed), model.rows)


def summarize(results: list[SeedResult], budget: float, draws: int = 2000) -> dict[str, dict[str, float]]:
    """Per allocation: incremental margin per unit of budget, mean over seeds, with a 95 % interval
    from the bootstrap over each seed's sent offers."""
    rng = np.random.default_rng(0)
    summary = {}
    for policy in (*COMPARED, CEILING):
        per_seed = [r.values[policy] for r in results]
        point = float(np.mean([v.sum() for v in per_seed])) / budget
        boot = (
            np.mean(
                [
                    v[rng.integers(len(v), size=(draws, len(v)))].sum(axis=1) if len(v) else np.zeros(draws)
                    for v in per_seed
                ],
                axis=0,
            )
            / budget
        )
        low, high = np.percentile(boot, [2.5, 97.5]).tolist()
        summary[policy] = {
            "margin_per_budget_unit": point,
            "low": low,
            "high": high,
            "offers_sent": float(np.mean([r.offers_sent[policy] for r in results])),
            "budget_spent": float(np.mean([r.spent[policy] for r in results])),
        }
    return summary
