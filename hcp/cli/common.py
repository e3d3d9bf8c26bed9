"""Small pieces the subcommands share: config from file plus flags, signals, the broker flag."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

from hcp.exc import ConfigError


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """--config, --broker and --data-dir, common to agent and collector."""
    parser.add_argument("-c", "--config", type=Path, metavar="FILE",
                        help="TOML config file; flags given as well override its keys")
    parser.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker (default 127.0.0.1:1883)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where the databases live")
    parser.add_argument("--policy", metavar="PRESET", help="policy preset, e.g. henan, ulanqab, ordos")


def broker_overrides(value: str | None) -> dict[str, Any]:
    """``host:port`` as config overrides for the [broker] section."""
    if not value:
        return {}
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--broker: expected HOST:PORT, got {value!r}")
    return {"host": host, "port": int(port)}


def common_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The overrides the shared flags produce."""
    overrides: dict[str, Any] = {"broker": broker_overrides(args.broker)}
    if args.data_dir:
        overrides["data"] = {"dir": str(args.data_dir)}
    if args.policy:
        overrides["policy"] = {"preset": args.policy}
    return overrides


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so services stop cleanly under systemd."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def add_print_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective configuration (secrets redacted) and exit")


def print_config_and_exit(config) -> int:
    """``--print-config``: the effective config as TOML, every secret redacted."""
    from hcp.config.secrets import printable

    print(printable(config), end="")
    return 0


def service_notifier():  # -> hcp.sdnotify.Notifier
    """The systemd notifier of this process (a no-op outside systemd)."""
    from hcp.sdnotify import Notifier

    return Notifier.from_env()
