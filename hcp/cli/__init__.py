"""The ``hcp`` command: one subcommand per job, each a thin wrapper over the library.

Errors of the project (``HcpError``), a file or directory that cannot be used
(``OSError`` naming it) and output closed early (``| head``) print as one line
a technician can act on and exit with status 2; anything else is a bug and
shows its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from hcp import __version__
from hcp.cli import central, channels, console, fleet, lifecycle, terminal, tools
from hcp.cli.common import fill_shared_flags
from hcp.exc import HcpError
from hcp.logs import setup_logging

Register = Callable[[argparse._SubParsersAction], None]

#: Commands that run until stopped: their INFO lines are the journal's record of what they did.
SERVICES = frozenset({"agent", "collector", "web", "demo", "console"})

#: Modules that add subcommands; each has ``register(subparsers)``.
COMMAND_MODULES = [terminal, central, tools, fleet, lifecycle, channels, console]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used by the test that checks every command has help)."""
    parser = argparse.ArgumentParser(
        prog="hcp", description="好差评 evaluator terminals, sync and collector.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hcp {__version__}")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="how much to log (default INFO for the services: agent, collector, web, demo; "
                        "WARNING for the one-shot commands, whose answer is their output)")
    parser.add_argument("--log-format", default="auto", choices=["auto", "text", "journal", "json"],
                        help="log line format; auto: journal under systemd (priority prefixes), text otherwise")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hcp`` console script."""
    args = fill_shared_flags(build_parser().parse_args(argv))
    setup_logging(args.log_level or ("INFO" if args.command in SERVICES else "WARNING"), args.log_format)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe can still be reported as one line
        return status
    except HcpError as err:
        return _fail(args, str(err))
    except BrokenPipeError:
        _silence_stdout()
        return _fail(args, "the output was closed before everything was written (e.g. by head)")
    except OSError as err:
        if err.filename is None:  # not about a file or directory someone named: a bug, keep the traceback
            raise
        return _fail(args, f"{err.filename}: {err.strerror}")
    except KeyboardInterrupt:
        return 130


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"hcp {args.command}: {message}", file=sys.stderr)
    return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not raise a second BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
