"""Small pieces the subcommands share: config from file plus flags, signals, the broker flag."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

from hcp.exc import ConfigError

#: Every flag the shared helpers add, with its value when not given: each may stand after the command's
#: last word (``hcp devices add ... -c FILE``) and, for ``hcp devices``, before its action as well.
SHARED_FLAGS = ("config", "broker", "data_dir", "policy", "database", "ca_file", "cert_file", "key_file", "prefix")


def add_config_flags(parser: argparse.ArgumentParser, *, broker: bool = True) -> None:
    """-c/--config, --data-dir and --policy; with ``broker`` also the broker flags (the commands that speak MQTT)."""
    parser.add_argument("-c", "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                        help="TOML config file; flags given as well override its keys")
    if broker:
        add_broker_flags(parser, config=False)
    parser.add_argument("--data-dir", type=Path, metavar="DIR", default=argparse.SUPPRESS,
                        help="where the databases live")
    parser.add_argument("--policy", metavar="PRESET", default=argparse.SUPPRESS,
                        help="policy preset, e.g. henan, ulanqab, ordos")


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a command that opens the collector's store and does not speak MQTT."""
    add_config_flags(parser, broker=False)
    parser.add_argument("--database", metavar="FILE|URL", default=argparse.SUPPRESS,
                        help="collector SQLite file (default <data-dir>/collector.sqlite) or postgresql:// URL")


def add_broker_flags(parser: argparse.ArgumentParser, *, config: bool = True, prefix: bool = False) -> None:
    """--broker and the TLS files (the [broker] section's keys), and -c unless the caller added it."""
    if config:
        parser.add_argument("-c", "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                            help="TOML config file with a [broker] section; flags given as well override its keys")
    parser.add_argument("--broker", metavar="HOST:PORT", default=argparse.SUPPRESS,
                        help="MQTT broker (default 127.0.0.1:1883)")
    parser.add_argument("--ca-file", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                        help="device CA certificate: connect over TLS (broker.ca_file)")
    parser.add_argument("--cert-file", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                        help="this client's certificate (broker.cert_file)")
    parser.add_argument("--key-file", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                        help="this client's private key (broker.key_file)")
    if prefix:
        parser.add_argument("--prefix", metavar="PREFIX", default=argparse.SUPPRESS,
                            help="topic prefix (default the config's broker.prefix, hcp/v1)")


def fill_shared_flags(args: argparse.Namespace) -> argparse.Namespace:
    """None for every shared flag the command line did not give."""
    for name in SHARED_FLAGS:
        if not hasattr(args, name):
            setattr(args, name, None)
    return args


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
    broker = broker_overrides(args.broker)
    for name in ("ca_file", "cert_file", "key_file", "prefix"):
        if getattr(args, name, None) is not None:
            broker[name] = str(getattr(args, name))
    overrides: dict[str, Any] = {"broker": broker}
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
