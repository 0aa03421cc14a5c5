"""An evaluation run end to end on a tiny log: tuned baselines, and the three report files."""

import dataclasses
import json

from tests.unit.evaluation.test_protocols_and_baselines import interactions
from tools.evaluation.protocols import retail_temporal
from tools.evaluation.report import Report, mean_of_seeds
from tools.evaluation.run import CURVE_KS, baselines


def test_baselines_are_tuned_scored_and_reported(tmp_path) -> None:
    split = retail_temporal(interactions())
    tuned: list[str] = []
    results = baselines(split, tuned.append)
    assert [r.name.split(" (")[0] for r in results] == [
        "most popular, baseline",
        "item-kNN",
        "EASE",
        "popular lately",
        "EASE",
    ]
    assert all(r.name.endswith("baseline") for r in results)
    assert "recency-weighted" in results[4].name and results[3].params["half_life_days"] > 0
    assert any(line.startswith("EASE 100:") for line in tuned)
    assert any(line.startswith("popular lately, half-life 7 d:") for line in tuned)
    assert sorted(results[0].at_k) == sorted(CURVE_KS)
    # u1's only relevant item, c, is the only one left to rank: every model finds it at rank 1.
    assert all(r.at_k[1]["hitrate"] == 1.0 for r in results)
    served = dataclasses.replace(results[0], name="served pipeline")
    report = Report("retail-temporal", split.stats, [*results, served], "recsys eval", {"commit": "abc"})
    paths = report.write(tmp_path)
    text = paths["markdown"].read_text()
    assert "| most popular, baseline |" in text and "commit: abc" in text
    best = report.best_baseline()
    assert best is not None and best.at_k[20]["ndcg"] == max(r.at_k[20]["ndcg"] for r in results)
    expected = results[0].at_k[20]["ndcg"] / best.at_k[20]["ndcg"]
    assert f"- served pipeline: {expected:.3f} x the best baseline" in text
    assert json.loads(paths["json"].read_text())["results"][2]["params"]["value"] > 0
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"


def test_a_mean_over_seeds_is_labelled_with_its_spread() -> None:
    split = retail_temporal(interactions())
    first, second = baselines(split, lambda _: None)[:2]
    second = dataclasses.replace(
        second, at_k={k: {**m, "ndcg": m["ndcg"] / 2} for k, m in second.at_k.items()}
    )
    mean = mean_of_seeds([first, second])
    table = Report("retail-temporal", split.stats, [mean], "recsys eval").markdown()
    low, high = second.at_k[20]["ndcg"], first.at_k[20]["ndcg"]
    row = next(line for line in table.splitlines() if line.startswith(f"| {first.name}"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[0] == f"{first.name}, mean of 2 seeds (NDCG@20 {low:.4f} to {high:.4f})"
    assert f"{(low + high) / 2:.4f}" in cells
