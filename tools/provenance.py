"""Which code produced a result: the commit, marked when the working tree differs from it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def commit() -> str:
    """The short commit, with "+changes" when tracked files differ from it; "unknown" outside git."""
    head = _git("rev-parse", "--short=12", "HEAD").strip() or "unknown"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no").strip())
    return head + ("+changes" if dirty else "")


def provenance_line(report: Mapping[str, Any], *more: str) -> str:
    """The line under a result file's title: its command, commit, date and CPUs, then `more`."""
    parts = [f"Command: `{report['command']}`", f"commit {report['commit']}", str(report["date"])]
    return " · ".join([*parts, f"{report['cpus']} CPUs", *more])


def write_result(out: Path, name: str, report: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """`<name>.md` (what a reader reads) and `<name>.json` (what the figures tests read) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    table, data = out / f"{name}.md", out / f"{name}.json"
    data.write_text(json.dumps(report, indent=2) + "\n")
    table.write_text(markdown)
    return table, data
