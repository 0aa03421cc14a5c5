"""Runs a command and writes its peak resident memory (kilobytes) to a file: `python -m
tools.bench.peak OUT -- COMMAND...`, exiting with the command's exit code.

A process's peak memory (ru_maxrss) counts the memory it had before it replaced itself with the
command: a child forked from a large process starts as large as that process. So the command is
started from this small process, and only what it used is reported (as GNU time does).
"""

from __future__ import annotations

import os
import subprocess
import sys


def main() -> None:
    out, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        raise SystemExit("usage: python -m tools.bench.peak OUT -- COMMAND...")
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    with open(out, "w") as handle:
        handle.write(str(usage.ru_maxrss))
    raise SystemExit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
