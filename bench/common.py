"""Small helpers the benchmark scripts share."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50, p99 and max of samples in seconds, as milliseconds."""
    ordered = sorted(samples_s)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3, "max_ms": ordered[-1] * 1e3}


def machine() -> str:
    """One line about where the figures were measured."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


#: The score mix of the benchmarks, 20 ratings long: the demo's simulated citizens'
#: weights (50 % 非常满意 … 5 % 非常不满意), so 15 % are 差评 and open follow-ups.
SCORE_MIX = (5,) * 10 + (4,) * 5 + (3,) * 2 + (2,) * 2 + (1,)


def score_for(n: int) -> int:
    """The n-th rating's score in the benchmark mix."""
    return SCORE_MIX[n % len(SCORE_MIX)]
