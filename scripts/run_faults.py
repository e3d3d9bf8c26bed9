"""Run the fault-injection suite and print the figures: ``make faults``.

    python scripts/run_faults.py                 # CI sizes (about two minutes)
    python scripts/run_faults.py --long          # the long run (hours): 10,000 agent kills, backlog 100,000...
    python scripts/run_faults.py --only agent_kill network_cut --agent-kills 1000 --backlog 100000

Every scenario ends with its figures: ratings made, thanked, ok, lost,
duplicated, unexpected (and unthanked: committed just before a kill -9, never
thanked, counted once). Exit status 1 if any rating was lost, duplicated or
unexpected, or a scenario found another problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "faults"), str(ROOT / "tests")]

from checker import HEADER, Figures  # noqa: E402
from scenarios import SCENARIOS, Sizes, run  # noqa: E402
from terminal import Zygote  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long", action="store_true", help="the long-run sizes")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run only these scenarios")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="random seed (printed, for replay)")
    parser.add_argument("--workdir", type=Path, help="keep logs and databases here (default: a temp dir)")
    for field in dataclasses.fields(Sizes):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=float if field.type == "float" else int,
                            help=f"override {field.name}")
    args = parser.parse_args()
    sizes = Sizes.long() if args.long else Sizes.ci()
    sizes = dataclasses.replace(sizes, **{f.name: getattr(args, f.name) for f in dataclasses.fields(Sizes)
                                          if getattr(args, f.name) is not None})
    print(f"# fault suite, seed {args.seed}, {sizes}", flush=True)
    results: list[Figures] = []
    with tempfile.TemporaryDirectory() as tmp, Zygote() as zygote:
        work = args.workdir or Path(tmp)
        for name in args.only or list(SCENARIOS):
            try:
                figures = run(name, work, zygote, sizes, args.seed)
            except Exception as err:  # one scenario failing must not hide the figures of the others
                traceback.print_exc()
                figures = Figures(name, problems=[f"{type(err).__name__}: {err}"])
            results.append(figures)
            print(figures.line(), flush=True)
            for problem in figures.problems:
                print(f"    problem: {problem}", flush=True)
    print(f"\n{HEADER}")
    for figures in results:
        print(figures.line())
    failed = [f.scenario for f in results if not f.passed]
    print(f"\n{'FAILED: ' + ', '.join(failed) if failed else 'all scenarios kept the promise'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
