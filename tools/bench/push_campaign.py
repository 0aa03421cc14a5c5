"""The result file of `recsys push simulate`: throughput, outcomes, rule checks, the rerun, and the
CPU each process spent per planned shopper (what sets the throughput)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.provenance import commit, provenance_line, write_result

NAME = "push-campaign"


@dataclass
class CampaignRun:
    """What one `recsys push plan` streamed: outcome counts, shoppers, and how long planning took."""

    counts: Counter[str] = field(default_factory=Counter)
    shoppers: int = 0
    replayed: int = 0  # outcomes planned by an earlier stream of the campaign
    seconds: float = 0.0
    resumed: int = 0  # streams reopened after the server closed one

    @property
    def pushes(self) -> int:
        return sum(count for outcome, count in self.counts.items() if outcome.startswith("push: "))

    @property
    def per_second(self) -> float:
        """Shoppers planned a second."""
        return self.shoppers / max(self.seconds, 1e-9)


def campaign_report(
    command: str,
    sizes: Mapping[str, int],
    setup_s: float,
    campaign: CampaignRun,
    cpu_s: Mapping[str, float],
    problems: int,
    rerun: Mapping[str, Any],
    samples: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """`cpu_s`: CPU seconds each process used while `campaign` ran; `rerun`: replayed, shoppers,
    seconds, identical; `samples`: planned pushes to show (as the JSONL file holds them)."""
    return {
        "command": command,
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "sizes": dict(sizes),
        "setup_s": round(setup_s, 1),
        "shoppers": campaign.shoppers,
        "pushes": campaign.pushes,
        "seconds": round(campaign.seconds, 1),
        "shoppers_per_s": round(campaign.per_second, 1),
        "streams_reopened": campaign.resumed,
        "outcomes": dict(campaign.counts.most_common()),
        "cpu_ms_per_shopper": {
            name: round(1000 * s / max(campaign.shoppers, 1), 2) for name, s in cpu_s.items()
        },
        "problems": problems,
        "rerun": dict(rerun),
        "samples": [
            {key: push[key] for key in ("language", "template", "title", "body")} for push in samples
        ],
    }


def campaign_markdown(report: Mapping[str, Any]) -> str:
    sizes = report["sizes"]
    cpu = report["cpu_ms_per_shopper"]
    rerun = report["rerun"]
    lines = [
        "# A push campaign over simulated shoppers",
        "",
        provenance_line(report),
        "",
        f"{sizes['shoppers']:,} shoppers ({sizes['trained_on']:,} of them loaded before training), "
        f"{sizes['items']:,} items, {sizes['days']} days of history; set up in {report['setup_s']:.0f} s.",
        "",
        f"**{report['shoppers_per_s']:,.1f} shoppers/s**: {report['shoppers']:,} shoppers planned in "
        f"{report['seconds']:,.1f} s, {report['pushes']:,} pushes"
        + (
            f"; the stream was reopened {report['streams_reopened']} time(s)"
            if report["streams_reopened"]
            else ""
        )
        + ".",
        "",
        "| outcome | shoppers |",
        "|---|---|",
        *(f"| {outcome} | {count:,} |" for outcome, count in report["outcomes"].items()),
        "",
        "CPU milliseconds per planned shopper of each process, while the campaign ran:",
        "",
        "| process | ms |",
        "|---|---|",
        *(f"| {name} | {ms:.2f} |" for name, ms in cpu.items()),
        f"| total | {sum(cpu.values()):.2f} |",
        "",
        f"Every planned push checked against opt-outs, quiet hours in the shopper's time zone, language, "
        f"length limits, empty slots and facts: {report['problems']} problem(s). The rerun of the campaign "
        f"replayed {rerun['replayed']:,} of {rerun['shoppers']:,} outcomes in {rerun['seconds']:.1f} s; "
        f"the same pushes file: {rerun['identical']}.",
    ]
    if report["samples"]:
        lines += ["", "Sample messages:", "", "| language | template | title | body |", "|---|---|---|---|"]
        lines += [
            f"| {push['language']} | {push['template']} | {push['title']} | {push['body']} |"
            for push in report["samples"]
        ]
    return "\n".join(lines) + "\n"


def write_campaign_result(out: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    return write_result(out, NAME, report, campaign_markdown(report))
