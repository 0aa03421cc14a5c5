"""`recsys eval --events FILE`: a shop's own CSV, read as the importer reads it, judged with the
baselines on the split the operator names."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ml.validation import LAST, RANDOM, TIME
from tools.evaluation.own_data import NoPurchases, csv_dataset, own_split

ROOT = Path(__file__).resolve().parents[3]
MAPPING = {"user_id": "customer", "item_id": "sku", "timestamp": "when", "type": "what"}


def _shop_csv(path: Path, shoppers: int = 60, items: int = 25) -> Path:
    """Shoppers of two tastes buying over 60 days, a few views among the purchases and one row
    without a time, under column names of the shop's own."""
    rng = np.random.default_rng(5)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["customer", "sku", "when", "what"])
        for shopper in range(shoppers):
            half = shopper % 2
            for step in range(6):
                item = int(rng.integers(items // 2)) * 2 + half
                moment = 1_700_000_000 + shopper * 3_600 + step * 86_400 * 10
                out.writerow([f"c{shopper}", f"sku{item}", str(moment), "purchase"])
            out.writerow([f"c{shopper}", f"sku{shopper % items}", str(1_700_000_000), "view"])
        out.writerow(["c0", "sku1", "", "purchase"])
    return path


def test_the_purchases_are_read_with_the_mapping_and_the_rest_counted(tmp_path: Path) -> None:
    problems: Counter[str] = Counter()
    dataset = csv_dataset(_shop_csv(tmp_path / "orders.csv"), MAPPING, problems=problems)

    assert len(dataset.interactions.users) == 60 * 6
    assert problems == {"not a purchase": 60, "purchase without a shopper, an item or a time": 1}
    assert list(dataset.interactions.times) == sorted(dataset.interactions.times)
    assert {item.item_id for item in dataset.items} == set(dataset.interactions.items.tolist())
    assert "360 purchases by 60 shoppers" in dataset.origin and len(dataset.digest) == 16
    kinds = {name: own_split(dataset, name, f"orders-{name}").kind for name in ("time", "random", "last")}
    assert kinds == {"time": TIME, "random": RANDOM, "last": LAST}


def test_a_file_without_purchases_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "views.csv"
    path.write_text("customer,sku,when,what\nc1,sku1,1700000000,view\n")
    with pytest.raises(NoPurchases, match="--default-type purchase"):
        csv_dataset(path, MAPPING)


def _recsys_eval(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`recsys eval` in its own process, as a user runs it, with a home of its own."""
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", "eval", *args],
        cwd=cwd,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'shared' / 'gen'}",
            "RECSYS_HOME": str(cwd),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_recsys_eval_judges_the_baselines_on_the_operators_own_file(tmp_path: Path) -> None:
    events = _shop_csv(tmp_path / "orders.csv")
    out = tmp_path / "out"
    result = _recsys_eval(
        "--events",
        str(events),
        "--mapping",
        json.dumps(MAPPING),
        "--split",
        "last",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "results.json").read_text())
    assert report["protocol"] == "orders-last" and report["split"]["test_users"] == 60
    assert report["command"].startswith(f"recsys eval --events {events} --mapping ")
    names = [row["name"] for row in report["results"]]
    assert any(name.startswith("most popular") for name in names) and any("EASE" in name for name in names)
    assert "left out 60 rows: not a purchase" in result.stdout


def test_protocol_and_events_together_are_refused(tmp_path: Path) -> None:
    result = _recsys_eval("--protocol", "sim-taste", "--events", "x.csv", cwd=tmp_path)
    assert result.returncode == 2 and "either --protocol or --events" in result.stderr
