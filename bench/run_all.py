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
    ("backlog drain", ["drain.py", "--ratings", "100000", "--runs", "5"]),
    ("collector ingest", ["ingest.py", "--terminals", "1000", "--ratings", "60"]),
    ("collector ingest, 10 a message", ["ingest.py", "--terminals", "1000", "--ratings", "60", "--batch", "10"]),
    ("fleet", ["fleet.py", "--terminals", "5000"]),
    ("agent memory", ["agent_memory.py", "--idle", "10"]),
    ("touchscreen UI", ["ui_bench.py"]),
    ("console figures", ["console.py", "--ratings", "1000000", "--requests", "60"]),
]
QUICK = [
    ("press latency", ["press_latency.py", "--presses", "1000"]),
    ("backlog drain", ["drain.py", "--ratings", "10000"]),
    ("collector ingest", ["ingest.py", "--terminals", "100", "--ratings", "10"]),
    ("fleet", ["fleet.py", "--terminals", "500", "--hold", "2"]),
    ("agent memory", ["agent_memory.py", "--idle", "3"]),
    ("touchscreen UI", ["ui_bench.py"]),
    ("console figures", ["console.py", "--ratings", "20000", "--days", "60", "--requests", "10"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    args = parser.parse_args()
    failed = 0
    table: list[tuple[str, str, float, int]] = []
    for name, command in QUICK if args.quick else FULL:
        print(f"\n== {name}", flush=True)
        start = time.monotonic()
        result = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], cwd=HERE,
                                stdout=subprocess.PIPE, text=True)
        print(result.stdout, end="", flush=True)
        failed += result.returncode != 0
        seconds = time.monotonic() - start
        print(f"   ({seconds:.0f} s{', FAILED' if result.returncode else ''})", flush=True)
        figures = [line for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]
        table.append((name, figures[0] if figures else "(no figures)", seconds, result.returncode))
        table += [("", line, 0.0, 0) for line in figures[1:]]
    print("\n" + "=" * 100)
    for name, line, seconds, code in table:
        status = ("FAILED" if code else f"{seconds:.0f} s") if name else ""
        print(f"{name:<18} {line}  {status}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
