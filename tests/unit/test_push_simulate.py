"""`recsys push simulate` (what `make bench-push` runs) end to end on a tiny shop: a fresh suite,
trained, a campaign over every shopper checked against the rules, and a rerun that plans nobody twice."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from recsys.gateway.v1 import gateway_pb2
from services.gateway.push.templates import LANGUAGES
from tools.cli.push import CampaignRun, _write_outcome

ROOT = Path(__file__).resolve().parents[2]


def test_a_simulated_campaign_plans_pushes_that_break_no_rule_and_reruns_identically(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    out = tmp_path / "pushes.jsonl"
    sizes = ("--shoppers", "300", "--trained-on", "250", "--items", "200", "--days", "10")
    files = ("--out", str(out), "--results", str(tmp_path / "results"))
    run = subprocess.run(
        [sys.executable, "-m", "tools.cli", "push", "simulate", *sizes, *files],
        cwd=tmp_path,
        env={
            **clean,
            "PYTHONPATH": f"{ROOT}:{ROOT / 'shared' / 'gen'}",
            "RECSYS_HOME": str(tmp_path / "home"),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    said = " ".join(run.stdout.split())  # the console wraps long lines at its own width
    checked = re.search(r"checked ([\d,]+) planned pushes [^:]*: (\d+) problem\(s\)", said)
    assert checked, run.stdout[-3000:]
    planned = int(checked.group(1).replace(",", ""))
    assert planned == sum(1 for _ in out.open(encoding="utf-8")) > 100
    assert checked.group(2) == "0"
    assert "300 of 300 outcomes replayed" in said
    assert "the same pushes file: True" in said
    report = json.loads((tmp_path / "results" / "push-campaign.json").read_text())
    assert (report["shoppers"], report["pushes"], report["problems"]) == (300, planned, 0)
    assert report["shoppers_per_s"] > 0 and report["rerun"]["identical"] is True
    # every process of the suite was measured, and planning costs the gateway and the stages CPU
    assert {"gateway", "profile", "candidates", "ranking", "policy"} <= set(report["cpu_ms_per_shopper"])
    assert min(report["cpu_ms_per_shopper"][name] for name in ("gateway", "candidates", "policy")) > 0
    assert {push["language"] for push in report["samples"]} == set(LANGUAGES)
    assert (
        f"{report['shoppers_per_s']:,.1f} shoppers/s"
        in (tmp_path / "results" / "push-campaign.md").read_text()
    )


def test_skips_are_counted_by_kind_without_each_shoppers_figures(tmp_path: Path) -> None:
    run = CampaignRun()
    with (tmp_path / "pushes.jsonl").open("w", encoding="utf-8") as handle:
        for best in ("0.0043", "0.0016"):
            skip = f"no item reaches the minimum confidence 0.01 (best {best})"
            _write_outcome(gateway_pb2.PlanPushCampaignResponse(user_id=best, skip_reason=skip), run, handle)
        _write_outcome(
            gateway_pb2.PlanPushCampaignResponse(user_id="u", skip_reason="opted out"), run, handle
        )
    assert run.counts == {"skip: no item reaches the minimum confidence 0.01": 2, "skip: opted out": 1}
