"""A shop's own events as an evaluation data set: `recsys eval --events FILE`.

The file is read exactly as `recsys data import csv` reads it (tools/importers/generic_csv.py: the
same column mapping, event types and timestamps). Its purchases, in time order, are what the
baselines and the served pipeline are judged on, with the split the operator names: the latest 20%
of the purchases (`time`), a random 20% of the shopper-item pairs (`random`) or each shopper's
latest new item (`last`). Rows that cannot be read, or that have no shopper, item or time, are
counted and left out, as the importer leaves them out.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from recsys.common.v1 import common_pb2
from tools.evaluation.datasets import Dataset
from tools.evaluation.protocols import (
    Interactions,
    Split,
    leave_last_out,
    purchases_in_time_order,
    random_holdout,
    time_cut,
)
from tools.importers import generic_csv

SPLITS: dict[str, Callable[[Interactions], Split]] = {
    "time": time_cut,
    "random": random_holdout,
    "last": leave_last_out,
}


class NoPurchases(ValueError):
    """The events file holds no purchase that can be evaluated on."""


def _digest(*paths: Path | None) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path is not None:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def csv_dataset(
    events: Path,
    mapping: Mapping[str, str],
    items: Path | None = None,
    default_type: str = "",
    problems: Counter[str] | None = None,
) -> Dataset:
    """The purchases of `events` (read with `mapping`, rows without a type taking `default_type`)
    and the catalog of `items` (columns named after the item fields), or, without it, an item per
    id bought. `problems` counts the rows left out, by reason."""
    problems = problems if problems is not None else Counter()
    users: list[str] = []
    item_ids: list[str] = []
    moments: list[float] = []
    quantities: list[int] = []
    prices: list[float] = []
    for event in generic_csv.read_events(events, mapping, default_type, problems):
        if event.type != common_pb2.EVENT_TYPE_PURCHASE:
            problems["not a purchase"] += 1
            continue
        if not event.user_id or not event.item_id or not event.HasField("timestamp"):
            problems["purchase without a shopper, an item or a time"] += 1
            continue
        users.append(event.user_id)
        item_ids.append(event.item_id)
        moments.append(event.timestamp.ToSeconds())
        quantities.append(event.quantity or 1)
        prices.append(event.price)
    if not users:
        raise NoPurchases(
            f"{events} holds no purchase with a shopper, an item and a time "
            "(pass --default-type purchase when every row is one)"
        )
    data = purchases_in_time_order(users, item_ids, moments, quantities, prices)
    if items is not None:
        catalog = generic_csv.read_named_items(items)
    else:
        catalog = [common_pb2.Item(item_id=item, title=item) for item in sorted(set(item_ids))]
    return Dataset(
        data,
        catalog,
        _digest(events, items),
        f"{events.name}: {len(users):,} purchases by {len(set(users)):,} shoppers "
        f"of {len(set(item_ids)):,} items",
    )


def own_split(dataset: Dataset, split: str, name: str) -> Split:
    """The named split (SPLITS) of the data set's purchases, named `name`."""
    return replace(SPLITS[split](dataset.interactions), name=name)
