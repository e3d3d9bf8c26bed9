"""Commands for trying hcp out and for support: ``hcp demo``, ``hcp receipt``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="run a simulated service hall end to end",
        description="Start a private Mosquitto, the collector and several window agents (real processes with "
        "the simulated panel); a simulated business system opens cases and prompts, simulated citizens "
        "press stars; midway the broker is stopped and started again. Ends with a table per window and "
        "exits non-zero if any thanked rating was lost or counted twice.")
    p.add_argument("--windows", type=int, default=4, help="window terminals to run (default 4)")
    p.add_argument("--cases", type=int, default=12, help="citizens served per window (default 12)")
    p.add_argument("--outage", type=float, default=6.0, help="seconds the broker is down midway (default 6)")
    p.add_argument("--policy", default="ulanqab", help="policy preset (default ulanqab: hall rating, batches)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the citizens")
    p.add_argument("--workdir", type=Path, help="keep databases and logs here (default: a temporary directory, "
                   "removed at the end unless --keep)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory (databases, logs)")
    p.add_argument("--console", nargs="?", const="127.0.0.1:8090", metavar="HOST:PORT",
                   help="afterwards, serve the console over the demo's database (default 127.0.0.1:8090) with a "
                   "demo account whose password is printed, until Ctrl-C")
    p.add_argument("--touch", action=argparse.BooleanOptionalAction, default=None,
                   help="show window 1's touchscreen in a desktop window (default: when a display exists)")
    p.set_defaults(func=run_demo)
    r = subparsers.add_parser(
        "receipt", help="print the receipt QR's URL for a case (tests, support)",
        description="Sign a receipt URL for CASE with the [receipt] key and URL template of a terminal's or the "
        "collector's config, exactly as the touchscreen's QR would carry it, and say until when it is valid "
        "(China time). For checking the rating page behind the QR, and for support: a citizen whose QR "
        "did not scan can be sent the link.")
    r.add_argument("case_id", help="the case (办件) the receipt is for")
    r.add_argument("-c", "--config", type=Path, required=True, metavar="FILE",
                   help="agent.toml or collector.toml (its secrets file is read too)")
    r.add_argument("--at", metavar="TIME", help="issue time, ISO 8601 (China time when no zone is given); default now")
    r.set_defaults(func=print_receipt)


def run_demo(args: argparse.Namespace) -> int:
    from hcp.sim.hall import DemoSettings, HallDemo

    if args.windows < 1 or args.cases < 8:
        from hcp.exc import ConfigError
        raise ConfigError("--windows must be at least 1 and --cases at least 8")

    def demo(workdir: Path) -> int:
        touch = args.touch if args.touch is not None else bool(os.environ.get("DISPLAY")
                                                               or os.environ.get("WAYLAND_DISPLAY"))
        settings = DemoSettings(workdir=workdir, windows=args.windows, cases_per_window=args.cases,
                                outage_s=args.outage, policy=args.policy, seed=args.seed, show_touch=touch)
        status = HallDemo(settings).run()
        if args.console:
            from hcp.cli.common import stop_on_signals
            from hcp.cli.console import demo_console

            demo_console(workdir / "collector", args.console, args.policy, stop_on_signals())
        return status

    with demo_workdir(args.workdir, keep=args.keep) as workdir:
        return demo(workdir)


@contextmanager
def demo_workdir(chosen: Path | None, *, keep: bool = False) -> Iterator[Path]:
    """The demo's work directory, said where it is at the start and what became of it at the end.

    A directory given by the user is always kept; a temporary one is removed unless ``keep``.
    """
    path = chosen or Path(tempfile.mkdtemp(prefix="hcp-demo-"))
    if chosen is not None or keep:
        print(f"work directory: {path} (databases and logs; kept afterwards)", flush=True)
    else:
        print(f"work directory: {path} (databases and logs; removed at the end, --keep keeps it)", flush=True)
    try:
        yield path
    finally:
        if chosen is None and not keep:
            shutil.rmtree(path, ignore_errors=True)
            print(f"removed the work directory {path}", flush=True)
        else:
            print(f"kept the work directory {path}", flush=True)


def print_receipt(args: argparse.Namespace) -> int:
    import tomllib

    from hcp.cli.display import china_time
    from hcp.config.schema import AgentConfig, CollectorConfig, load_config
    from hcp.domain import CST, now_cst
    from hcp.exc import ConfigError
    from hcp.ui.receipt import ReceiptMaker

    try:
        is_agent = "device" in tomllib.loads(args.config.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        is_agent = False  # load_config names what is wrong with the file
    config = load_config(AgentConfig if is_agent else CollectorConfig, args.config)
    receipt = config.receipt
    key = receipt.load_key()
    if key is None:
        raise ConfigError(f"{args.config}: receipt: " + ("enabled = false" if not getattr(receipt, "enabled", True) else
                          "no key_file or key") + "; a receipt URL needs the key shared with the rating page")
    try:
        at = datetime.fromisoformat(args.at) if args.at else now_cst()
    except ValueError:
        raise ConfigError(f"--at: {args.at!r} is not a time like 2026-03-09T15:20") from None
    at = at if at.tzinfo else at.replace(tzinfo=CST)
    maker = ReceiptMaker(receipt.url_template, key, receipt.valid_s)
    print(maker.url(args.case_id, at.timestamp()))
    valid_until = datetime.fromtimestamp(int(at.timestamp()) + receipt.valid_s, CST)
    print(f"valid until {china_time(valid_until)} (China time)", file=sys.stderr)
    return 0
