"""One step of a long benchmark run as a child process: its wall time and its peak memory."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Step:
    """What one step took: seconds of wall time, the peak resident memory of its command's process
    (and of the children that process waited for), its exit code."""

    name: str
    seconds: float
    peak_mb: float
    returncode: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def summary(self) -> dict[str, object]:
        return {**asdict(self), "seconds": round(self.seconds, 1), "peak_mb": round(self.peak_mb, 1)}


def run_step(name: str, command: Sequence[str], env: Mapping[str, str]) -> Step:
    """Runs `command` to its end, its output on this terminal (progress bars included); its peak
    memory is measured by a small launcher (tools/bench/peak.py), not counting this process's."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "peak"
        launcher = [sys.executable, "-m", "tools.bench.peak", str(report), "--", *command]
        returncode = subprocess.run(launcher, env=dict(env), stdin=subprocess.DEVNULL, check=False).returncode
        kilobytes = int(report.read_text()) if report.exists() else 0
    return Step(name, time.monotonic() - started, kilobytes / 1024, returncode)


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of a running process so far (VmHWM, Linux); 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
