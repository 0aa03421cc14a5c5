"""Review texts whose tone follows the shopper's satisfaction.

A review is two or three phrases, each drawn from the pool of a tone (very negative to very
positive) around the shopper's true satisfaction, with noise: a satisfied shopper mostly writes
praise but may grumble about delivery, a disappointed one may still like the colour. The rating
is a coarse, separately noisy reading of the same satisfaction, so a classifier taught by ratings
can be scored against the truth it never saw.
"""

from __future__ import annotations

import numpy as np

TONES = (
    (
        "Complete waste of money.",
        "Broke after one use.",
        "Nothing like the pictures, returned it.",
        "Awful quality, I want a refund.",
        "Worst purchase this year.",
    ),
    (
        "Smaller than I expected.",
        "The colour is duller than shown.",
        "A bit flimsy for the price.",
        "Took ages to arrive.",
        "Not quite what I hoped for.",
    ),
    (
        "It does the job.",
        "Fine for the price.",
        "Arrived on time.",
        "About what I expected.",
        "Packaging was plain.",
    ),
    (
        "Nice quality, happy with it.",
        "Looks good in the kitchen.",
        "Good value, would buy again.",
        "Pretty colours and well made.",
        "My daughter likes it.",
    ),
    (
        "Absolutely love it!",
        "Gorgeous, exceeded my expectations.",
        "Perfect gift, everyone adored it.",
        "Best purchase in ages, superb quality.",
        "Brilliant, buying two more.",
    ),
)
TONE_NOISE = 0.8
# Shoppers review what they chose to buy, so satisfaction runs high: the middle tone (and 4
# stars) sits at the typical satisfaction of a bought item; a tone step is one unit from it.
TONE_CENTRE = 2.5
STARS_PER_UNIT = 0.8


def rating_of(satisfaction: float) -> int:
    """The stars a shopper gives: mostly 4 and 5, as shops see, but not all 5."""
    return int(np.clip(np.round(4.0 + STARS_PER_UNIT * (satisfaction - TONE_CENTRE)), 1, 5))


def review_text(seed: int, shopper_number: int, counter: int, satisfaction: float) -> str:
    """The text of one review; its own random stream, so the rest of the simulation is unchanged."""
    rng = np.random.default_rng([seed, 10, shopper_number, counter])
    phrases = []
    for _ in range(int(rng.integers(2, 4))):
        felt = 2 + satisfaction - TONE_CENTRE + rng.normal(0, TONE_NOISE)
        tone = int(np.clip(np.round(felt), 0, len(TONES) - 1))
        pool = TONES[tone]
        phrases.append(pool[int(rng.integers(len(pool)))])
    return " ".join(dict.fromkeys(phrases))
