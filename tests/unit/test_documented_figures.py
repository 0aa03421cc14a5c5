"""The quality figures in the README are the ones in the committed result files."""

import json
import re
from pathlib import Path

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
