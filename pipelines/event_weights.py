"""Training the portrait's event weights, published only where they surely beat the defaults.

ml/event_weights.py learns a weight per event type on most shoppers and judges it beside the
default weights on the others; the weights refitted on every shopper are published only when the
held-out gain's 95% interval lies above zero. Otherwise the portrait keeps the defaults.
"""

from __future__ import annotations

from ml.event_weights import DEFAULT_WEIGHTS, EventWeights, TooFewEvents, fit_event_weights, type_name
from ml.snapshot import Snapshot
from pipelines.progress import console


def weights_line(weights: EventWeights) -> str:
    """Each type's weight, with its default where learning changed it."""
    return ", ".join(
        f"{type_name(kind)} {weight:g}"
        + (f" (default {DEFAULT_WEIGHTS[kind]:g})" if weight != DEFAULT_WEIGHTS[kind] else "")
        for kind, weight in weights.weights.items()
    )


def fit_published_event_weights(snapshot: Snapshot) -> EventWeights | None:
    try:
        found = fit_event_weights(snapshot)
    except TooFewEvents as error:
        console.print(f"event weights: not learned ({error}); the portrait keeps the defaults")
        return None
    figures = found.figures
    console.print(
        f"event weights on {figures['held_out_shoppers']:.0f} held-out shoppers: NDCG of the categories "
        f"they bought next {figures['learned_ndcg']:.4f} learned, {figures['default_ndcg']:.4f} default "
        f"(gain 95% interval [{figures['gain_low']:+.4f}, {figures['gain_high']:+.4f}]); "
        f"weights: {weights_line(found)}"
    )
    if not figures["published"]:
        console.print("event weights: not published (not surely better than the defaults here)")
        return None
    return found
