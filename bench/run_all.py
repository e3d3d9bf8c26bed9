"""Run every benchmark and print its figures: ``make bench``.

    python bench/run_all.py [--quick]

--quick uses smaller counts (for a smoke run); the figures in
docs/benchmarks.md come from the full run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent

FULL = [
    ("press latency", ["press_latency.py", "--presses", "10000"]),
    ("backlog drain", ["drain.py", "--ratings", "100000"]),
    ("agent memory", ["agent_memory.py", "--idle", "10"]),
    ("touchscreen UI", ["ui_bench.py"]),
]
QUICK = [
    ("press latency", ["press_latency.py", "--presses", "1000"]),
    ("backlog drain", ["drain.py", "--ratings", "10000"]),
    ("agent memory", ["agent_memory.py", "--idle", "3"]),
    ("touchscreen UI", ["ui_bench.py"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    args = parser.parse_args()
    failed = 0
    for name, command in QUICK if args.quick else FULL:
        print(f"\n== {name}", flush=True)
        start = time.monotonic()
        result = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], cwd=HERE)
        failed += result.returncode != 0
        print(f"   ({time.monotonic() - start:.0f} s{', FAILED' if result.returncode else ''})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
