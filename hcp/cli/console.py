"""Commands of the console: ``hcp console`` (the web application) and ``hcp users`` (its accounts).

A password is read from a prompt, or from standard input with ``--password-stdin``
(one line), never from the command line, where ``ps`` and the shell's history would keep it.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from hcp.cli.central import collector_config, open_store
from hcp.cli.common import add_print_config, add_store_flags, print_config_and_exit, stop_on_signals
from hcp.cli.display import china_time, table
from hcp.exc import HcpError

Sub = argparse._SubParsersAction


def register(subparsers: Sub) -> None:
    _register_console(subparsers)
    _register_users(subparsers)


# ---- console -------------------------------------------------------------------

def _register_console(subparsers: Sub) -> None:
    p = subparsers.add_parser(
        "console", help="serve the console: work queue, appeals, lookup, fleet, audit (web, for hall staff)",
        description="Serve the web console on console.listen (default 127.0.0.1:8090) over the collector "
        "database: hall managers, follow-up officers, appeal reviewers, supervisors and operators log in with "
        "accounts made by 'hcp users add'. See docs/console.md.")
    add_store_flags(p)
    p.add_argument("--listen", metavar="HOST:PORT", help="where to listen (console.listen)")
    add_print_config(p)
    p.set_defaults(func=run_console)


def run_console(args: argparse.Namespace) -> int:
    config = collector_config(args)
    if args.listen:
        if ":" not in args.listen or not args.listen.rpartition(":")[2].isdigit():
            raise HcpError(f"--listen: expected HOST:PORT, got {args.listen!r}")
        config = config.model_copy(update={"console": config.console.model_copy(update={"listen": args.listen})})
    if args.print_config:
        return print_config_and_exit(config)
    from hcp.collector.console.app import serve

    serve(config, stop_on_signals())
    return 0


def demo_console(folder, listen: str, policy: str, stop, out=sys.stdout) -> None:
    """Serve the console over a demo's collector database with a ``demo`` account (every role), until ``stop``."""
    import secrets
    import threading

    from hcp.collector.console.accounts import Accounts, parse_roles
    from hcp.collector.console.app import serve
    from hcp.collector.opening import open_store as open_collector_store
    from hcp.config.schema import CollectorConfig, load_config

    config = load_config(CollectorConfig, None, {"data": {"dir": str(folder)}, "policy": {"preset": policy},
                                                 "console": {"listen": listen}})
    password = secrets.token_urlsafe(12)
    with open_collector_store(config) as store:
        accounts = Accounts(store, actor="cli:demo")
        roles = parse_roles(["manager", "followup", "reviewer", "operator", "supervisor"])
        if store.account("demo") is None:
            accounts.add("demo", password, roles)
        else:
            accounts.reset("demo", password)
    print(f"console: http://{listen}/  account: demo  password: {password}  (Ctrl-C stops it)", file=out,
          flush=True)
    serve(config, stop or threading.Event())


# ---- users ---------------------------------------------------------------------

def _register_users(subparsers: Sub) -> None:
    p = subparsers.add_parser(
        "users", help="console accounts: add, roles, disable, enable, reset, list",
        description="Manage the console's accounts in the collector database. Roles: manager (大厅负责人), "
        "followup (回访整改), reviewer (申诉复核), supervisor (监督, read-only), operator (运维); each for a hall "
        "as ROLE:HALL, or for every hall as ROLE or ROLE:*. Every change is in the audit log and ends the "
        "account's sessions.")
    sub = p.add_subparsers(dest="users_command", metavar="ACTION", required=True, help="what to do")
    add = sub.add_parser("add", help="a new account with its roles; the password from a prompt or stdin",
                         description="Create an account. The password (10 characters or more) is asked twice, "
                         "or read as one line from standard input with --password-stdin.")
    _name(add)
    _roles(add, required=True)
    _stdin(add)
    add.set_defaults(func=users_add)
    roles = sub.add_parser("roles", help="replace an account's roles", description="Replace all roles of NAME.")
    _name(roles)
    _roles(roles, required=True)
    roles.set_defaults(func=users_roles)
    for action, text in (("disable", "disable an account (its sessions end at once)"),
                         ("enable", "enable a disabled account")):
        q = sub.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        _name(q)
        q.set_defaults(func=users_disable if action == "disable" else users_enable)
    reset = sub.add_parser("reset", help="set a new password (its sessions end)",
                           description="Set a new password for NAME, from a prompt or --password-stdin.")
    _name(reset)
    _stdin(reset)
    reset.set_defaults(func=users_reset)
    listing = sub.add_parser("list", help="every account with its roles", description="List the accounts.")
    add_store_flags(listing)
    listing.set_defaults(func=users_list)


def _name(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the account name")
    add_store_flags(p)


def _roles(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--role", action="append", required=required, metavar="ROLE[:HALL]",
                   help="a role for a hall, e.g. manager:hall01, followup:hall01, supervisor (all halls); repeatable")


def _stdin(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise HcpError("--password-stdin: nothing on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise HcpError("no terminal to ask the password on: give it on standard input with --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise HcpError("the two passwords differ; nothing changed")
    return first


def _accounts(args: argparse.Namespace):  # -> (Store, Accounts)
    from hcp.collector.console.accounts import Accounts

    store = open_store(args)
    return store, Accounts(store)


def users_add(args: argparse.Namespace) -> int:
    from hcp.collector.console.accounts import parse_roles

    roles = parse_roles(args.role)
    password = _password(args)
    store, accounts = _accounts(args)
    with store:
        account = accounts.add(args.name, password, roles)
    print(f"added {account.name}: {_roles_text(account.roles)}")
    return 0


def users_roles(args: argparse.Namespace) -> int:
    from hcp.collector.console.accounts import parse_roles

    roles = parse_roles(args.role)
    store, accounts = _accounts(args)
    with store:
        account = accounts.set_roles(args.name, roles)
    print(f"{account.name}: {_roles_text(account.roles)}")
    return 0


def users_disable(args: argparse.Namespace) -> int:
    store, accounts = _accounts(args)
    with store:
        accounts.set_disabled(args.name, True)
    print(f"disabled {args.name}")
    return 0


def users_enable(args: argparse.Namespace) -> int:
    store, accounts = _accounts(args)
    with store:
        accounts.set_disabled(args.name, False)
    print(f"enabled {args.name}")
    return 0


def users_reset(args: argparse.Namespace) -> int:
    password = _password(args)
    store, accounts = _accounts(args)
    with store:
        accounts.reset(args.name, password)
    print(f"new password set for {args.name}; its sessions ended")
    return 0


def users_list(args: argparse.Namespace) -> int:
    store, accounts = _accounts(args)
    with store:
        found = accounts.all()
    rows = [(a.name, "disabled" if a.disabled else "active", _roles_text(a.roles), china_time(a.changed_at))
            for a in found]
    print(table(["name", "state", "roles", "changed"], rows) if rows else "no accounts (hcp users add makes one)")
    return 0


def _roles_text(roles) -> str:
    return ", ".join(f"{role}:{hall}" for role, hall in roles) or "(no roles)"
