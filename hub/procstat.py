"""What /proc says about a process: CPU time used, resident memory, children (Linux only).

The benchmarks use it to report CPU microseconds per event for each process on the path and
the resident memory of `govhub serve`; elsewhere the figures are simply absent (0 or None).
"""

from __future__ import annotations

import contextlib
import os


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, field: str = "VmRSS") -> float | None:
    """A memory line of /proc/<pid>/status in MB (VmRSS: resident now, VmHWM: peak)."""
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open(f"/proc/{pid}/status", encoding="ascii") as f,
    ):
        for line in f:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def children(parent: int) -> list[int]:
    """Pids of the processes whose parent is ``parent``."""
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if entry.isdigit():
            with (
                contextlib.suppress(OSError, IndexError, ValueError),
                open(f"/proc/{entry}/stat", encoding="ascii") as f,
            ):
                if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry))
    return found
