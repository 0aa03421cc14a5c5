"""A seeded synthetic shop with a wide catalog, as CSV files for `recsys data import csv`.

22,000 shoppers buy 200,000 times over 90 days from 12,000 items (nearly all of which sell):
each purchase comes from the shopper's own taste cluster (60%) or from everyone's favourites,
popularity falling off as rank^-0.8. Usage: python tests/bench/wide_catalog.py FOLDER
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

import numpy as np

SHOPPERS, ITEMS, EVENTS, CLUSTERS, DAYS, SEED = 22_000, 12_000, 200_000, 40, 90, 11


def write(folder: Path) -> None:
    rng = np.random.default_rng(SEED)
    item_cluster = rng.integers(0, CLUSTERS, ITEMS)
    user_cluster = rng.integers(0, CLUSTERS, SHOPPERS)
    popularity = 1.0 / (rng.permutation(ITEMS) + 20.0) ** 0.8
    members = [np.flatnonzero(item_cluster == c) for c in range(CLUSTERS)]
    within = [popularity[m] / popularity[m].sum() for m in members]
    overall = popularity / popularity.sum()
    users = rng.integers(0, SHOPPERS, EVENTS)
    own_taste = rng.random(EVENTS) < 0.6
    stamps = 1_700_000_000 + rng.integers(0, DAYS * 86_400, EVENTS)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "events.csv.gz", "wt", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["event_id", "user_id", "item_id", "type", "timestamp"])
        for n in range(EVENTS):
            cluster = user_cluster[users[n]]
            if own_taste[n]:
                item = members[cluster][rng.choice(len(members[cluster]), p=within[cluster])]
            else:
                item = rng.choice(ITEMS, p=overall)
            out.writerow([f"e{n}", f"u{users[n]}", f"i{item}", "purchase", int(stamps[n])])
    with (folder / "items.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["item_id", "title", "price", "category"])
        for item in range(ITEMS):
            group = item_cluster[item]
            out.writerow(
                [
                    f"i{item}",
                    f"Item {item} of group {group}",
                    round(float(rng.uniform(1, 50)), 2),
                    f"Group {group}",
                ]
            )


if __name__ == "__main__":
    write(Path(sys.argv[1]))
