"""The quality figures in the README are the ones in the committed result files."""

import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(?P<protocol>[a-z-]+)` \| (?P<cells>.+) \|$")


def _figures(results: dict) -> dict[str, str]:
    rows = {row["name"]: row["at_k"]["20"]["ndcg"] for row in results["results"]}
    baselines = {name: ndcg for name, ndcg in rows.items() if "baseline" in name}
    best = max(baselines, key=baselines.__getitem__)
    greedy = next(ndcg for name, ndcg in rows.items() if name.endswith(", greedy"))
    default = next(ndcg for name, ndcg in rows.items() if name.endswith(", default policy"))
    return {
        "greedy": f"{greedy:.4f}",
        "default": f"{default:.4f}",
        "best": f"{baselines[best]:.4f}",
        "ratio": f"{greedy / baselines[best]:.2f}x",
        "default ratio": f"{default / greedy:.2f}x",
        "commit": results["provenance"]["commit"][:7],
    }


def test_the_readme_quality_table_matches_the_result_files() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = [match for line in readme.splitlines() if (match := ROW.match(line))]
    assert len(rows) >= 3, "the README's quality table has a row per protocol"
    for row in rows:
        cells = [cell.strip() for cell in row["cells"].split("|")]
        path = ROOT / "docs" / "results" / f"{row['protocol']}-served.json"
        figures = _figures(json.loads(path.read_text()))
        greedy, ratio, default, default_ratio, best, commit = cells[:6]
        assert greedy == figures["greedy"] and ratio == figures["ratio"], row["protocol"]
        assert default == figures["default"] and default_ratio == figures["default ratio"], row["protocol"]
        assert best.endswith(figures["best"]), row["protocol"]
        assert commit == figures["commit"], row["protocol"]


CPU_ROW = re.compile(r"^\| \**(?P<name>[a-z ]+?)\** \| \**(?P<ms>[\d.]+)\** \| *\**(?P<replicas>\d*)\** *\|$")


def test_the_capacity_figures_match_the_load_result_file() -> None:
    """docs/capacity.md's CPU table and best-throughput ratio are those of docs/results/load.json."""
    text = (ROOT / "docs" / "capacity.md").read_text()
    load = json.loads((ROOT / "docs" / "results" / "load.json").read_text())
    assert load["commit"].removesuffix("+changes") in text
    suite = load["cpu_ms_per_call_at_concurrency_1"]["suite"]
    expected = {name.replace("modelserver", "model server"): ms for name, ms in suite.items()}
    expected["suite"] = sum(suite.values())
    expected["null pipeline"] = sum(load["cpu_ms_per_call_at_concurrency_1"]["null pipeline"].values())
    rows = {m["name"]: m for line in text.splitlines() if (m := CPU_ROW.match(line))}
    assert set(rows) == set(expected)
    for name, ms in expected.items():
        assert rows[name]["ms"] == f"{ms:.1f}", name
        if name not in ("suite", "null pipeline"):
            assert rows[name]["replicas"] == str(math.ceil(ms / 0.7)), name
    assert f"**{load['best_ratio']:.3f}**" in text
    readme = (ROOT / "README.md").read_text()
    for figure in (expected["suite"], expected["null pipeline"]):
        assert f"**{figure:.1f} ms**" in readme
    assert f"**{load['best_ratio']:.3f}**" in readme
    before = json.loads((ROOT / "docs" / "results" / "load-before-8daa776.json").read_text())
    before_total = sum(before["cpu_ms_per_call_at_concurrency_1"]["suite"].values())
    assert f"{before_total:.1f} ms" in readme and f"{before_total:.1f} ms" in text


def test_the_readme_chaos_table_matches_the_result_file() -> None:
    """Every line of README's table under faults is docs/results/chaos.json's, as `recsys chaos`
    judged it."""
    from tools.cli.chaos import invariants

    report = json.loads((ROOT / "docs" / "results" / "chaos.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert report["commit"].removesuffix("+changes") in readme
    for invariant, target, measured, met in invariants(report):
        assert f"| {invariant} | {target} | {measured} | {'yes' if met else '**no**'} |" in readme, invariant


def test_the_promotion_figures_in_the_docs_are_the_result_files() -> None:
    results = json.loads((ROOT / "docs" / "results" / "promotions.json").read_text())
    docs = (ROOT / "docs" / "promotions.md").read_text()
    for name, figures in results["allocations"].items():
        shown = f"{figures['margin_per_budget_unit']:+.4f} [{figures['low']:+.4f}, {figures['high']:+.4f}]"
        assert shown in docs, name
    assert results["within_budget"] is True
    assert results["command"] in docs


def test_the_sentiment_figures_in_the_docs_are_the_result_file() -> None:
    results = json.loads((ROOT / "docs" / "results" / "sentiment.json").read_text())
    docs = (ROOT / "docs" / "profiles-and-items.md").read_text()
    for name, key in (
        ("classifier (taught by ratings)", "classifier_auc"),
        ("opinion-word count", "word_count_baseline_auc"),
        ("the rating itself", "rating_auc"),
    ):
        assert re.search(rf"\\| {re.escape(name)}[^|]* \\| {results['mean'][key]:.3f} \\|", docs), name


def test_the_event_weight_figures_in_the_docs_are_the_result_file() -> None:
    results = json.loads((ROOT / "docs" / "results" / "event-weights.json").read_text())
    docs = (ROOT / "docs" / "profiles-and-items.md").read_text()
    for name, key in (
        ("learned weights", "learned_ndcg"),
        ("default weights", "default_ndcg"),
        ("default weights, likes and shares left out", "without_likes_and_shares_ndcg"),
    ):
        assert f"| {name} | {results['mean'][key]:.4f} |" in docs, name


@pytest.mark.parametrize("protocol", ["sim-taste", "sim-popular"])
def test_the_review_feature_ablation_in_the_docs_is_the_result_file(protocol: str) -> None:
    results = json.loads((ROOT / "docs" / "results" / f"{protocol}-ranking-sentiment.json").read_text())
    ndcg = {r["name"]: r["at_k"]["20"]["ndcg"] for r in results["results"]}
    row = next(
        line
        for line in (ROOT / "docs" / "ranking.md").read_text().splitlines()
        if line.startswith(f"| {protocol} |")
    )
    assert row.split(" | ")[1].startswith(f"{ndcg['ranker']:.4f}")
    assert row.split(" | ")[2].startswith(f"{ndcg['ranker without sentiment']:.4f}")
    assert row.split(" | ")[3].startswith(f"{ndcg['candidates alone (fused order)']:.4f}")


def test_the_ingestion_figures_in_capacity_md_are_the_result_files() -> None:
    """Every events-a-second figure docs/capacity.md gives is in the import result it cites."""
    docs = (ROOT / "docs" / "capacity.md").read_text()
    section = docs[docs.index("## Ingestion") : docs.index("## Scale")]
    results = "".join(path.read_text() for path in (ROOT / "docs" / "results").glob("import*.md"))
    figures = re.findall(r"\b\d{1,2},\d{3}\b", section)
    assert len(figures) >= 6
    for figure in figures:
        if figure in ("1,000", "5,000", "200,000", "20,000"):
            continue  # the benchmark's settings and the target
        assert f"({figure} events/s" in results, figure


def test_the_scale_figures_in_capacity_md_are_the_result_file() -> None:
    """docs/capacity.md's scale table and serving figures are those of docs/results/scale.json."""
    docs = (ROOT / "docs" / "capacity.md").read_text()
    section = " ".join(docs[docs.index("## Scale") : docs.index("## What holds state")].split())
    scale = json.loads((ROOT / "docs" / "results" / "scale.json").read_text())
    assert f"{scale['shoppers']:,} shoppers x {scale['items']:,} items x {scale['days']} days" in section
    assert f"{scale['events']:,} events" in section and scale["commit"][:7] in section
    for step in scale["steps"]:
        seconds = step["seconds"]
        duration = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
        assert duration in section, step["name"]
        if step["peak_mb"] and step["name"] != "start with every model":
            assert f"{step['peak_mb'] / 1024:.2f} GB" in section, step["name"]
    imported = next(step for step in scale["steps"] if step["name"] == "import")
    assert f"{round(scale['events'] / imported['seconds'], -2):,.0f} events/s" in section
    serving = scale["serving"]
    assert f"{serving['achieved_rps']:.1f} answered a second" in section
    assert f"p50 {serving['p50_ms']:.0f} ms and p99 {serving['p99_ms']:.0f} ms" in section
    assert f"p99 {scale['demo_p99_ms']:.0f} ms" in section
    demo = json.loads((ROOT / "docs" / "results" / "load-d27fb6e.json").read_text())["phases"]
    at_rate = next(
        p for p in demo if p["target"] == "suite" and p["phase"] == f"{serving['offered_rps']:g} rps"
    )
    assert at_rate["p99_ms"] == scale["demo_p99_ms"]
    assert f"gave {at_rate['achieved_rps']:.1f} answered a second" in section
    assert f"model server ({scale['services_peak_mb']['modelserver']:.0f} MB)" in section
    assert max(mb for name, mb in scale["services_peak_mb"].items() if name != "modelserver") < 350


def test_the_push_campaign_figures_in_push_md_are_the_result_file() -> None:
    """docs/push.md's Results are those of docs/results/push-campaign.json."""
    docs = (ROOT / "docs" / "push.md").read_text()
    section = " ".join(docs[docs.index("### Results") :].split())
    run = json.loads((ROOT / "docs" / "results" / "push-campaign.json").read_text())
    cpu = run["cpu_ms_per_shopper"]
    assert run["commit"][:7] in section and f"`{run['command']}`" in section
    assert f"{run['sizes']['shoppers']:,} shoppers, {run['sizes']['trained_on']:,} of them" in section
    assert f"planned {run['shoppers_per_s']:.1f} shoppers/s" in section
    assert f"{run['pushes']:,} pushes and {run['shoppers'] - run['pushes']:,} skips" in section
    assert f"({run['problems']} problems)" in section and run["rerun"]["identical"]
    assert f"{sum(cpu.values()):.1f} ms of CPU per shopper" in section
    for name in ("items", "candidates", "policy", "gateway", "ranking", "profile"):
        assert f"{name} {cpu[name]:.1f}" in section, name
