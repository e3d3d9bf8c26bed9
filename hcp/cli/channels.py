"""Commands for the other channels: ``hcp enter``, ``import-ratings``, ``contact``, ``web``, ``upstream``."""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import datetime
from pathlib import Path

from hcp.cli.central import collector_config, open_store
from hcp.cli.common import add_config_flags, service_notifier, stop_on_signals
from hcp.exc import HcpError

_HAND_CHANNELS = ["paper", "hotline"]
CSV_COLUMNS = ("case_id", "score", "reasons", "text", "rated_at", "ref", "kind")


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_enter(subparsers)
    _register_import(subparsers)
    _register_contact(subparsers)
    _register_web(subparsers)
    _register_upstream(subparsers)


def _store_flags(p: argparse.ArgumentParser) -> None:
    add_config_flags(p)
    p.add_argument("--database", type=Path, metavar="FILE", help="collector SQLite file")


def _register_enter(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "enter", help="enter one rating from a paper form or a hotline call",
        description="Store one rating under the same one-rating rules as the window, e.g.\n"
        "  hcp enter C-2026-000123 --channel paper --score 2 --reason 服务效率 --ref F0042 --at 2026-03-09T15:20+08:00",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _store_flags(p)
    p.add_argument("case_id", help="the case (办件) rated")
    p.add_argument("--channel", required=True, choices=_HAND_CHANNELS, help="where the rating was given")
    p.add_argument("--score", required=True, type=int, choices=range(1, 6), help="5 非常满意 … 1 非常不满意")
    p.add_argument("--reason", action="append", default=[], help="a reason (one of the policy's dimensions); repeat")
    p.add_argument("--text", default="", help="the rater's words")
    p.add_argument("--at", help="when it was given, ISO 8601 with offset (default now)")
    p.add_argument("--ref", default="", help="form number or call id: entering it again is answered as the first time")
    p.add_argument("--hall", action="store_true", help="a hall-overall rating (一日一评) instead of the service")
    p.set_defaults(func=enter)


def _register_import(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-ratings", help="import paper or hotline ratings from a CSV file",
        description="Each row is checked and stored alone; every row's outcome is printed and a bad row never "
        f"stops the rest. Columns (header row): {', '.join(CSV_COLUMNS)}; case_id and score are required, "
        "reasons are separated by | or ；, rated_at is ISO 8601 (default now), kind is service or hall. "
        "Exit status 1 when any row was not accepted.")
    _store_flags(p)
    p.add_argument("file", type=Path, help="the CSV file (UTF-8, with or without BOM)")
    p.add_argument("--channel", required=True, choices=_HAND_CHANNELS, help="the channel of every row")
    p.set_defaults(func=import_ratings)


def _register_contact(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "contact", help="keep an applicant's phone number for the rating reminder",
        description="Read the phone number from standard input (never from the command line, where it would "
        "show in the process list and shell history) and keep it, encrypted, for the case's reminder SMS.")
    _store_flags(p)
    p.add_argument("case_id", help="the case whose applicant is reminded")
    p.set_defaults(func=add_contact)


def _register_web(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "web", help="serve the phone rating page, reminders and upstream forwarding",
        description="Run what the [web], [notify] and [upstream] sections turn on, beside a collector on the same "
        "database (hcp collector runs them too when configured).")
    _store_flags(p)
    p.set_defaults(func=run_web)


def _register_upstream(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "upstream", help="the upstream outbox: records pending, sent and rejected",
        description="Count the outbox's records by status and list those the provincial platform rejected, "
        "with its reason.")
    _store_flags(p)
    p.set_defaults(func=upstream_status)


def _parse_at(text: str | None) -> datetime:
    from hcp.domain import now_cst

    if not text:
        return now_cst()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise HcpError(f"--at: {text!r} is not ISO 8601 (e.g. 2026-03-09T15:20+08:00)") from None


def enter(args: argparse.Namespace) -> int:
    from hcp.collector.channels import Channels, Entry
    from hcp.domain import Channel, Kind, now_cst

    entry = Entry(args.case_id, args.score, Channel(args.channel), _parse_at(args.at), tuple(args.reason),
                  args.text, Kind.HALL if args.hall else Kind.SERVICE, args.ref)
    with open_store(args) as store:
        result = Channels(store).enter(entry, now_cst())
    print(f"{result.rating_id}\t{result.outcome}\t{result.reason}")
    return 0 if result.outcome == "accepted" else 1


def import_ratings(args: argparse.Namespace) -> int:
    from hcp.collector.channels import Channels
    from hcp.domain import now_cst

    rows = _read_csv(args.file)  # all of it first: a file that cannot be read stores nothing
    accepted = 0
    with open_store(args) as store:
        channels = Channels(store)
        for line, row in rows:
            outcome, text = _import_row(channels, row, args.channel, now_cst())
            accepted += outcome == "accepted"
            print(f"{args.file.name}:{line}\t{row.get('case_id') or '-'}\t{outcome}\t{text}")
    print(f"{len(rows)} row(s): {accepted} accepted, {len(rows) - accepted} not", file=sys.stderr)
    return 0 if accepted == len(rows) else 1


def _read_csv(path: Path) -> list[tuple[int, dict]]:
    """Each row with the line it starts on; HcpError naming the file (and line) for a wrong header or quote."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as source:
            reader = csv.DictReader(source, strict=True)
            _check_header(path, reader.fieldnames)
            rows, start = [], reader.line_num + 1
            try:
                for row in reader:
                    rows.append((start, row))
                    start = reader.line_num + 1
            except csv.Error as err:
                raise HcpError(f"{path}:{start}: {_csv_problem(err)}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise HcpError(f"{path}: cannot read the CSV ({err})") from None
    return rows


def _check_header(path: Path, header: list[str] | None) -> None:
    names = [name.strip() for name in header or []]
    missing = [name for name in ("case_id", "score") if name not in names]
    unknown = [name for name in names if name not in CSV_COLUMNS]
    if missing or unknown:
        problems = [f"missing column(s) {', '.join(missing)}" if missing else "",
                    f"unknown column(s) {', '.join(repr(n) for n in unknown)}" if unknown else ""]
        raise HcpError(f"{path}:1: wrong header: {'; '.join(p for p in problems if p)} "
                       f"(expected a header row of {', '.join(CSV_COLUMNS)}; case_id and score required)")


def _csv_problem(err: csv.Error) -> str:
    if "end of data" in str(err) or "EOF" in str(err):
        return "a quote opened in the row starting on this line is never closed"
    return f"not CSV ({err})"


def _import_row(channels, row: dict, channel: str, now: datetime) -> tuple[str, str]:
    from hcp.collector.channels import Entry
    from hcp.domain import Channel

    row = {(key or "").strip(): (value or "").strip() if isinstance(value, str) else value
           for key, value in row.items()}
    try:
        entry = Entry(case_id=row.get("case_id") or "", score=_score(row.get("score") or ""),
                      channel=Channel(channel), rated_at=_row_time(row.get("rated_at") or ""),
                      reasons=_reasons(row.get("reasons") or ""), text=row.get("text") or "",
                      kind=_kind(row.get("kind") or "service"), ref=row.get("ref") or "")
    except HcpError as err:
        return "rejected", str(err)
    if not entry.case_id:
        return "rejected", "case_id: empty"
    result = channels.enter(entry, now)
    return str(result.outcome), f"{result.rating_id} {result.reason}".strip()


def _score(text: str) -> int:
    try:
        score = int(text)
    except ValueError:
        raise HcpError(f"score: {text!r} is not a whole number 1-5" if text else "score: empty") from None
    if not 1 <= score <= 5:
        raise HcpError(f"score: {score} is not 1-5")
    return score


def _row_time(text: str) -> datetime:
    from hcp.domain import CST, now_cst

    if not text:
        return now_cst()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise HcpError(f"rated_at: {text!r} is not ISO 8601 (e.g. 2026-03-09T15:20+08:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CST)


def _kind(text: str):  # -> Kind
    from hcp.domain import Kind

    try:
        return Kind(text)
    except ValueError:
        raise HcpError(f"kind: {text!r} is not service or hall") from None


def _reasons(text: str) -> tuple[str, ...]:
    parts = text.replace("；", "|").replace(";", "|").split("|")
    return tuple(p.strip() for p in parts if p.strip())


def add_contact(args: argparse.Namespace) -> int:
    from hcp.collector.channels import Contacts

    phone = sys.stdin.readline().strip()
    with open_store(args) as store:
        try:
            added = Contacts(store).add(args.case_id, phone)
        except ValueError as err:
            raise HcpError(str(err)) from None
    print(f"case {args.case_id}: contact kept" if added else f"case {args.case_id}: already has a contact (kept)")
    return 0


def run_web(args: argparse.Namespace) -> int:
    from hcp.collector.channel_services import ChannelServices

    config = collector_config(args)
    services = ChannelServices(config, config.database_path, config.key_path)
    if not services.configured:
        raise HcpError("nothing to run: set web.listen, notify.gateway_url or upstream.url in the config")
    stop, notifier = stop_on_signals(), service_notifier()
    with services:
        notifier.ready("channels")
        while not stop.wait(1.0):
            notifier.watchdog()
    return 0


def upstream_status(args: argparse.Namespace) -> int:
    from hcp.collector.upstream import STATUSES

    with open_store(args) as store:
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(store._conn.execute("SELECT status, count(*) FROM upstream_outbox GROUP BY 1").fetchall())
        rejected = store._conn.execute("SELECT record_id, reason FROM upstream_outbox WHERE status = 'rejected' "
                                       "ORDER BY done_at").fetchall()
    print("  ".join(f"{status} {counts[status]}" for status in STATUSES))
    for record_id, reason in rejected:
        print(f"rejected\t{record_id}\t{reason}")
    return 0
