"""Commands for the collector side: ``hcp collector``, ``devices``, ``export``, and the business-system tools
``hcp cases`` and ``hcp prompt``."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from hcp.cli.common import (
    add_broker_flags,
    add_config_flags,
    add_print_config,
    add_store_flags,
    common_overrides,
    print_config_and_exit,
    service_notifier,
    stop_on_signals,
)
from hcp.cli.display import china_time, table
from hcp.exc import HcpError


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_collector(subparsers)
    _register_migrate(subparsers)
    _register_devices(subparsers)
    _register_export(subparsers)
    _register_cases(subparsers)
    _register_prompt(subparsers)
    _register_seal_key(subparsers)


# ---- collector -----------------------------------------------------------------

def _register_collector(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "collector", help="run the central collector",
        description="Subscribe to every terminal's ratings, link them to case records, enforce the "
        "one-rating rules, store them in SQLite and answer each with an ack. Quick start:\n"
        "  hcp collector --broker 127.0.0.1:1883 --data-dir ./var/collector --policy ulanqab",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(p)
    add_print_config(p)
    p.add_argument("--database", metavar="FILE|URL", default=argparse.SUPPRESS,
                   help="SQLite file (default <data-dir>/collector.sqlite) or postgresql://user@host/dbname")
    p.set_defaults(func=run_collector)


def collector_config(args: argparse.Namespace):  # -> CollectorConfig
    """The collector's config from --config and the flags."""
    from hcp.config.schema import CollectorConfig, load_config

    overrides = common_overrides(args)
    if getattr(args, "database", None):
        overrides["collector"] = {"database": str(args.database)}
    return load_config(CollectorConfig, args.config, overrides)


def open_store(args: argparse.Namespace, *, create: bool = False):  # -> Store
    """The collector's store, as its config names it, under the policy the database records.

    Only ``hcp collector`` and ``hcp migrate`` pass ``create``; every other command refuses a missing
    database or key with one line naming the path.
    """
    from hcp.collector.opening import open_store as open_collector_store

    return open_collector_store(collector_config(args), create=create)


def run_collector(args: argparse.Namespace) -> int:
    config = collector_config(args)
    if args.print_config:
        return print_config_and_exit(config)
    from hcp.instance import InstanceLock

    # One process per collector id (its MQTT session); collectors with other ids may share the database.
    database = config.database_path
    # A server database has no folder here: the lock lives in the data folder.
    folder = config.data.dir if isinstance(database, str) else database.parent
    with InstanceLock(folder / f"collector-{config.collector.id}.lock",
                      f"collector {config.collector.id}"):
        return _serve_collector(config)


def _serve_collector(config) -> int:
    from hcp.collector.channel_services import ChannelServices
    from hcp.collector.opening import open_store as open_collector_store
    from hcp.collector.service import Collector

    # Create or migrate the database, settle its policy and prove it writable before connecting.
    with open_collector_store(config, create=True) as store:
        profile = store.profile
    stop = stop_on_signals()
    notifier = service_notifier()
    # The phone page, reminders and upstream forwarding, when configured: own connections, same database.
    with Collector(config, profile=profile) as collector, ChannelServices(config, collector.database,
                                                                          collector.secret_file):
        notifier.ready(f"collector {config.collector.id}")
        collector.run_forever(stop, heartbeat=notifier.watchdog, on_status=lambda s: notifier.send(f"STATUS={s}"))
        notifier.stopping()
    return 0


def _register_migrate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "migrate", help="create or migrate the collector database and key, then exit",
        description="Create the collector's database (mode 0600) and pseudonym key when missing, apply the "
        "schema migrations and record the policy the database is for (a database made before policies were "
        "recorded adopts the config's). The other commands then find it; only this and 'hcp collector' "
        "create one.")
    add_store_flags(p)
    p.add_argument("--change-policy", action="store_true",
                   help="record the policy given (--policy or -c) even when the database was made for another "
                   "region; ratings already stored keep the outcomes judged under the old one")
    p.add_argument("--grant-to", metavar="ROLE",
                   help="PostgreSQL: give the collectors' login role what it needs and no more (adding and reading "
                   "records, never changing them); run as the owner role (docs/install.md)")
    p.set_defaults(func=run_migrate)
    p = subparsers.add_parser(
        "migrate-store", help="copy an SQLite collector database into PostgreSQL, chain included",
        description="Copy every row of the SQLite collector database --from into the PostgreSQL database --to "
        "(made and migrated when empty), in one transaction, keeping each record's place so the hash chain "
        "verifies there. The source is verified and its chain head signed first; an interrupted copy leaves "
        "nothing and is run again; a finished one is recognised. Stop the collector first. Example:\n"
        "  hcp migrate-store -c /etc/hcp/collector.toml --from /var/lib/hcp/collector.sqlite "
        "--to postgresql://hcp_owner@db1/hcp",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(p, broker=False)
    p.add_argument("--from", dest="source", required=True, type=Path, metavar="FILE",
                   help="the SQLite collector database")
    p.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://user@host/dbname")
    p.set_defaults(func=run_migrate_store)


def run_migrate(args: argparse.Namespace) -> int:
    from hcp.collector.opening import open_store as open_collector_store

    with open_collector_store(collector_config(args), create=True, change_policy=args.change_policy) as store:
        profile = store.profile
        if args.grant_to:
            store.grant_collector_role(args.grant_to)
    config = collector_config(args)
    print(f"{config.database_path}: ready, policy {profile.name} ({profile.code})"
          + (f"; role {args.grant_to} granted" if args.grant_to else ""))
    return 0


def run_migrate_store(args: argparse.Namespace) -> int:
    from hcp.collector.opening import open_store as open_collector_store
    from hcp.collector.store import is_url
    from hcp.collector.store.copy import copy_store

    if not is_url(args.target):
        raise SystemExit("hcp migrate-store: --to: give a postgresql:// URL")
    args.database = str(args.source)
    with open_collector_store(collector_config(args)) as source:
        args.database = args.target
        with open_collector_store(collector_config(args), create=True) as target:
            report = copy_store(source, target, lambda table, n: print(f"{table}: {n} row(s)") if n else None)
            problems = target.verify_chain()
    if report.already:
        print(f"{args.target.split('@')[-1]}: already holds this copy ({report.total} rows); nothing done")
    for problem in problems:
        print(problem)
    if problems:
        print(f"the copy does not verify: {len(problems)} problem(s)")
        return 1
    print(f"copied {report.total} rows; the target verifies (hcp verify --database {args.target.split('?')[0]})")
    return 0


# ---- devices -------------------------------------------------------------------

def _register_devices(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "devices", help="list, register and remove terminals",
        description="The terminals the collector accepts ratings from, each bound to a hall and a window. "
        "A rating from a terminal that is not registered is rejected.")
    add_store_flags(p)
    p.set_defaults(func=list_devices)
    sub = p.add_subparsers(dest="devices_command", metavar="ACTION")
    add = sub.add_parser("add", help="register a terminal at a hall and window",
                         description="Register (or re-bind) a terminal: hcp devices add hall01-w03 --hall hall01 "
                         "--window w03")
    add.add_argument("device_id", help="the terminal's device id")
    add.add_argument("--hall", required=True, help="hall id")
    add.add_argument("--window", required=True, help="window id")
    add_store_flags(add)
    add.set_defaults(func=add_device)
    remove = sub.add_parser("remove", help="unregister a terminal",
                            description="Unregister a terminal; its stored ratings stay.")
    remove.add_argument("device_id", help="the terminal's device id")
    add_store_flags(remove)
    remove.set_defaults(func=remove_device)
    listing = sub.add_parser("list", help="list registered terminals with their health (the default action)",
                             description="Every registered terminal: online or offline (from its retained status "
                             "and last will), last seen, outbox depth, version, clock and settings version, and "
                             "alerts (offline too long, outbox growing; thresholds in the [fleet] section).")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    add_store_flags(listing)
    listing.set_defaults(func=list_devices)
    alerts = sub.add_parser("alerts", help="only the terminals that need attention; exit 1 if any",
                            description="Print one line per alert and exit 1 when there is any, 0 otherwise "
                            "(for a monitoring timer or cron job).")
    add_store_flags(alerts)
    alerts.set_defaults(func=device_alerts)
    imp = sub.add_parser("import", help="register a terminal from its signed registration request",
                         description="Check a registration request written by 'hcp provision' (its certificate "
                         "issued by the device CA, not revoked, CN = the device id, signature valid) and register "
                         "the terminal at the hall and window it names.")
    imp.add_argument("file", type=Path, help="the registration request (JSON)")
    imp.add_argument("--ca", type=Path, required=True, metavar="FILE", help="the device CA certificate (ca.crt)")
    imp.add_argument("--crl", type=Path, metavar="FILE", help="the CRL (crl.pem); default: beside --ca")
    add_store_flags(imp)
    imp.set_defaults(func=import_device)


def _register(store, device_id: str, hall_id: str, window_id: str) -> None:
    try:
        store.register_device(device_id, hall_id, window_id)
    except ValueError as err:
        raise HcpError(str(err)) from None


def add_device(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        _register(store, args.device_id, args.hall, args.window)
    print(f"registered {args.device_id} at hall {args.hall}, window {args.window}")
    return 0


def remove_device(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.remove_device(args.device_id)
    print(f"removed {args.device_id}")
    return 0


def import_device(args: argparse.Namespace) -> int:
    from hcp.collector.store.schema_meta import request_digest
    from hcp.domain import now_cst
    from hcp.registration import verify_request

    try:
        document = json.loads(args.file.read_text("utf-8"))
    except (OSError, ValueError) as err:
        raise HcpError(f"{args.file}: cannot read the request ({err})") from None
    binding = verify_request(document, args.ca, args.crl or args.ca.with_name("crl.pem"))
    digest = request_digest(document["request"])
    with open_store(args) as store, store.batch():
        earlier = store.claim_request(digest, binding.device_id, now_cst().isoformat())
        if earlier:
            raise HcpError(f"{args.file}: this request was imported already ({earlier}); a request registers "
                           "once: have the terminal make a new one ('hcp provision')")
        _register(store, binding.device_id, binding.hall_id, binding.window_id)
    print(f"registered {binding.device_id} at hall {binding.hall_id}, window {binding.window_id}")
    return 0


def fleet_health(args: argparse.Namespace) -> list:
    """Every terminal's health under the config's thresholds (hcp.collector.fleet)."""
    from hcp.collector.fleet import Thresholds, assess
    from hcp.domain import now_cst

    fleet = collector_config(args).fleet
    limits = Thresholds(fleet.offline_alert_s, fleet.outbox_alert_depth, fleet.outbox_alert_age_s,
                        fleet.stale_after_s)
    with open_store(args) as store:
        rows = store.fleet()
    now = now_cst()
    return [assess(row, now, limits) for row in rows]


def list_devices(args: argparse.Namespace) -> int:
    health = fleet_health(args)
    if getattr(args, "json", False):
        for h in health:
            print(json.dumps(h.__dict__, ensure_ascii=False))
        return 0
    rows = []
    for h in health:
        clock = "-" if h.clock_synced is None else ("ok" if h.clock_synced else "UNSYNC")
        rows.append((h.device_id, h.hall_id, h.window_id, "online" if h.online else "OFFLINE", h.outbox_depth,
                     h.version, clock, h.settings_version, china_time(h.last_seen, seconds=True),
                     "; ".join(h.alerts)))
    print(table(("device", "hall", "window", "state", "outbox", "version", "clock", "cfg",
                 "last seen (China time)", "alerts"), rows, right=(4, 7)))
    warning = crl_alert(args)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


def crl_alert(args: argparse.Namespace) -> str | None:
    """A line when the broker's CRL expires soon or has expired (then Mosquitto refuses every client)."""
    import datetime as dt

    from hcp.pki import PkiError, crl_warning

    config = collector_config(args)
    path = config.fleet.crl_file
    if path is None:
        if config.broker.ca_file is None or not (config.broker.ca_file.parent / "crl.pem").exists():
            return None  # no TLS, or the CRL lives where this host cannot see it
        path = config.broker.ca_file.parent / "crl.pem"
    try:
        return crl_warning(path, dt.datetime.now(dt.UTC), config.fleet.crl_alert_days)
    except PkiError as err:
        return str(err)


def device_alerts(args: argparse.Namespace) -> int:
    found = 0
    for h in fleet_health(args):
        for alert in h.alerts:
            print(f"{h.device_id}\t{h.hall_id}/{h.window_id}\t{alert}")
            found += 1
    warning = crl_alert(args)
    if warning:
        print(f"-\t-\t{warning}")
        found += 1
    return 1 if found else 0


# ---- export --------------------------------------------------------------------

def _register_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="the collector's ratings as JSON lines",
        description="Write every stored rating as one JSON object a line: the rating, its current outcome "
        "and reason, the first answer the terminal got, and its linked case record(s). The rater's "
        "identity is never in it.")
    add_store_flags(p)
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    try:
        with open_store(args) as store:
            for row in store.export():
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        if args.output:
            out.close()
    return 0


# ---- business-system tools -----------------------------------------------------

def _register_cases(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cases", help="send case records (办件) to the collector, as a business system does",
        description="Publish case records on {prefix}/cases. FILE holds JSON lines, each one case record as "
        "in docs/protocol.md; '-' reads stdin. Prints the collector's answer per case.")
    p.add_argument("file", help="JSON-lines file of case records, or -")
    p.add_argument("--seal", metavar="PUBLIC_KEY", help="seal applicant_id and applicant_phone to this collector "
                   "public key (base64, from 'hcp seal-key' on the collector) before sending")
    add_broker_flags(p, prefix=True)
    p.add_argument("--timeout", type=float, default=10, help="seconds to wait for the answer")
    p.set_defaults(func=send_cases)


def _register_prompt(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prompt", help="ask a terminal to prompt for a rating, as the clerk's business system does",
        description="Publish a rating prompt to a terminal: hcp prompt hall01-w03 --case C1 --item-code 001 "
        "--item-name 个体工商户设立登记 --clerk E1024\nThe terminal's retained status is read first: an unknown or "
        "offline terminal is not prompted (exit 1) unless --queue is given.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("device_id", help="the terminal to prompt")
    p.add_argument("--case", action="append", required=True, metavar="CASE_ID",
                   help="case id (repeat for a batch)")
    p.add_argument("--item-code", required=True, help="service item code")
    p.add_argument("--item-name", required=True, help="service item name, shown to the citizen")
    p.add_argument("--clerk", required=True, help="clerk id")
    p.add_argument("--clerk-name", help="clerk name")
    p.add_argument("--ttl", type=float, default=120, help="seconds the prompt stays valid")
    p.add_argument("--queue", action="store_true",
                   help="send the prompt even when the terminal is offline or unknown (it gets it on reconnect)")
    add_broker_flags(p, prefix=True)
    p.set_defaults(func=send_prompt)


def broker_config(args: argparse.Namespace):  # -> BrokerSection
    """The [broker] section of -c with the broker and TLS flags over it."""
    from hcp.config.schema import CollectorConfig, load_config

    return load_config(CollectorConfig, args.config, {"broker": common_overrides(args)["broker"]}).broker


def _link(broker, client_id: str, on_message=None):  # (BrokerSection, ...) -> MqttLink
    from hcp.sync.mqtt import LinkSettings, MqttLink, tls_from

    settings = LinkSettings(host=broker.host, port=broker.port, client_id=client_id, clean_start=True,
                            session_expiry_s=0, tls=tls_from(broker.ca_file, broker.cert_file, broker.key_file))
    return MqttLink(settings, on_message or (lambda _m: None))


def _connected(link, broker, timeout: float) -> None:
    link.start()
    if not link.wait_connected(timeout):
        tls = " over TLS" if broker.ca_file else ""
        raise HcpError(f"broker: cannot connect to {broker.host}:{broker.port}{tls} within {timeout:g} s "
                       "(check --broker, -c and the TLS files)")


def send_cases(args: argparse.Namespace) -> int:
    import queue

    from hcp.protocol import CaseRecord, CasesAckMessage, CasesMessage, Topics, decode, encode

    source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    with source:
        lines = [(n, line) for n, line in enumerate(source, 1) if line.strip()]
    cases = []
    for number, line in lines:
        try:
            cases.append(CaseRecord.model_validate_json(line))
        except ValueError as err:
            raise HcpError(f"{args.file}:{number}: not a case record ({str(err).splitlines()[1:2]})") from None
    if args.seal:
        cases = [_sealed(case, args.seal) for case in cases]
    broker = broker_config(args)
    topics = Topics(broker.prefix)
    answers: queue.Queue = queue.Queue()
    with _link(broker, f"hcp-cases-{uuid.uuid4().hex[:8]}", answers.put) as link:
        link.subscribe(topics.cases_ack)
        _connected(link, broker, args.timeout)
        link.publish(topics.cases, encode(CasesMessage(v=1, cases=cases)))
        try:
            reply = decode(CasesAckMessage, answers.get(timeout=args.timeout).payload)
        except queue.Empty:
            raise HcpError(f"no answer from the collector within {args.timeout} s") from None
    for result in reply.results:
        print(f"{result.case_id}\t{result.outcome}\t{result.reason}")
    return 0 if all(r.outcome != "rejected" for r in reply.results) else 1


def _sealed(case, public_key: str):  # CaseRecord -> CaseRecord
    """``case`` with its plain applicant fields sealed to ``public_key``, as a business system sends them."""
    import base64
    import binascii

    from hcp.collector.sealing import FIELDS, seal

    try:
        key = base64.b64decode(public_key, validate=True)
    except binascii.Error:
        key = b""
    if len(key) != 32:
        raise HcpError("--seal: expected the collector's public key as printed by 'hcp seal-key' (base64, 32 bytes)")
    update = {}
    for field in FIELDS:
        if getattr(case, field) is not None:
            update[field], update[f"{field}_sealed"] = None, seal(getattr(case, field), field, case.case_id, key)
    return case.model_copy(update=update)


def _register_seal_key(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "seal-key", help="print the public key business systems seal applicant ids and phones to",
        description="Print the collector's X25519 public key, to which business systems seal applicant_id and "
        "applicant_phone of case records (docs/protocol.md, 'Sealed applicant fields'), so the broker never "
        "holds them in the clear. The key pair is created beside the pseudonym key on first use; the private "
        "half never leaves it.")
    add_config_flags(p)
    p.add_argument("--pem", action="store_true", help="print it as SubjectPublicKeyInfo PEM (Java: "
                   "X509EncodedKeySpec, algorithm XDH) instead of raw base64")
    p.set_defaults(func=print_seal_key)


def print_seal_key(args: argparse.Namespace) -> int:
    import base64

    from hcp.collector.sealing import SealKey, seal_key_path

    key = SealKey.load_or_create(seal_key_path(collector_config(args).key_path))
    print(key.public_pem.strip() if args.pem else base64.b64encode(key.public_bytes).decode("ascii"))
    return 0


def send_prompt(args: argparse.Namespace) -> int:
    import queue

    from hcp.domain import now_cst
    from hcp.protocol import PromptMessage, Topics, encode

    _check_ident("device_id", args.device_id)
    try:
        prompt = PromptMessage(v=1, prompt_id=f"p-{uuid.uuid4().hex[:12]}", case_ids=args.case,
                               item_code=args.item_code, item_name=args.item_name, clerk_id=args.clerk,
                               clerk_name=args.clerk_name, expires_at=now_cst() + timedelta(seconds=args.ttl))
    except ValueError as err:  # pydantic's ValidationError
        raise HcpError(_first_error(err, {"case_ids": "--case", "item_code": "--item-code",
                                          "item_name": "--item-name", "clerk_id": "--clerk",
                                          "clerk_name": "--clerk-name", "expires_at": "--ttl"})) from None
    broker = broker_config(args)
    topics = Topics(broker.prefix)
    statuses: queue.Queue = queue.Queue()
    with _link(broker, f"hcp-prompt-{uuid.uuid4().hex[:8]}", statuses.put) as link:
        link.subscribe(topics.status(args.device_id))
        _connected(link, broker, 10)
        absent = _terminal_absent(statuses, args.device_id)
        if absent and not args.queue:
            print(f"hcp prompt: {args.device_id} is {absent}; not prompted (--queue sends it anyway)",
                  file=sys.stderr)
            return 1
        link.publish(topics.prompt(args.device_id), encode(prompt), wait_s=10)
    print(f"queued for {args.device_id} ({absent}): {prompt.prompt_id}" if absent
          else f"prompted {args.device_id}: {prompt.prompt_id}")
    return 0


#: Seconds to wait for a terminal's retained status after subscribing.
_STATUS_WAIT_S = 2.0


def _terminal_absent(statuses, device_id: str) -> str:
    """'' when the terminal's retained status says online; else why not ('unknown …', 'offline since …')."""
    import queue

    from hcp.exc import ProtocolError
    from hcp.protocol import StatusMessage, decode

    try:
        incoming = statuses.get(timeout=_STATUS_WAIT_S)
    except queue.Empty:
        return "unknown to the broker (no status)"
    try:
        status = decode(StatusMessage, incoming.payload)
    except ProtocolError:
        return "of unknown state (unreadable status)"
    if status.state == "online":
        return ""
    return f"offline since {status.at}" if status.at else "offline"


def _check_ident(name: str, value: str) -> None:
    """A device id goes into a topic: no wildcards, separators or spaces."""
    import re

    from hcp.protocol import IDENT_CHARS

    if not re.fullmatch(f"[{IDENT_CHARS}]{{1,64}}", value):
        raise HcpError(f"{name}: {value!r} is not a device id (1-64 letters, digits, '.', '_', ':' or '-')")


def _first_error(err: ValueError, flags: dict[str, str]) -> str:
    """One line from a pydantic ValidationError: the flag and what was wrong with it."""
    errors = getattr(err, "errors", lambda: [])()
    if not errors:
        return str(err).splitlines()[0]
    first = errors[0]
    field = str(first["loc"][0]) if first.get("loc") else ""
    return f"{flags.get(field, field)}: {first['msg']} (got {first.get('input')!r})"
