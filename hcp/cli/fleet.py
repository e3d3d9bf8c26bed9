"""Commands for technicians and the fleet: ``pki``, ``provision``, ``selftest``, ``status``,
``push-settings`` and ``install-service``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hcp.cli.common import add_broker_flags
from hcp.cli.display import china_time
from hcp.exc import HcpError

UNITS = Path(__file__).resolve().parent.parent.parent / "systemd"


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_pki(subparsers)
    _register_provision(subparsers)
    _register_selftest(subparsers)
    _register_status(subparsers)
    _register_push(subparsers)
    _register_install(subparsers)


# ---- pki -----------------------------------------------------------------------

def _register_pki(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pki", help="the device CA: certificates for terminals, services and the broker; revocation",
        description="Manage the fleet's certificates in a PKI directory kept on the collector (never on a "
        "terminal). A terminal's certificate has CN = its device id, which Mosquitto uses as the username "
        "for the ACL. Typical: hcp pki init; hcp pki broker mqtt.hall.local; hcp pki service collector; "
        "hcp pki device hall01-w03; hcp pki revoke hall01-w03.")
    p.add_argument("--dir", type=Path, default=Path("/etc/hcp/pki"), help="PKI directory (default /etc/hcp/pki)")
    sub = p.add_subparsers(dest="pki_command", metavar="ACTION", required=True, help="what to do")
    init = sub.add_parser("init", help="create the device CA and an empty CRL",
                          description="Create ca.crt, ca.key (0600), crl.pem and index.json.")
    init.add_argument("--name", default="hcp device CA", help="the CA's common name")
    init.set_defaults(func=pki_init)
    device = sub.add_parser("device", help="issue a terminal's certificate (CN = device id)",
                            description="Write issued/ID.crt and issued/ID.key (0600) for one terminal.")
    device.add_argument("device_id", help="the terminal's device id")
    device.set_defaults(func=pki_device)
    service = sub.add_parser("service", help="issue a service identity: collector, business or operator",
                             description="Write issued/NAME.crt and .key for a service the ACL grants more rights. "
                             "Several collectors sharing the stream ([collector] share_group) each need their own: "
                             "collector, collector-2, collector-3 ...; 'hcp pki broker-config' then writes an ACL "
                             "entry for each.")
    service.add_argument("name", metavar="NAME", help="collector, collector-<name>, business or operator")
    service.set_defaults(func=pki_service)
    broker = sub.add_parser("broker", help="issue the broker's server certificate",
                            description="Write broker.crt and broker.key for the given host names and addresses.")
    broker.add_argument("hosts", nargs="+", help="host names and IP addresses terminals use to reach the broker")
    broker.set_defaults(func=pki_broker)
    conf = sub.add_parser("broker-config", help="write Mosquitto's hcp config for this PKI directory",
                          description="Write hcp.conf, hcp-tls.conf and hcp.acl into OUT_DIR (e.g. "
                          "/etc/mosquitto/conf.d) with the TLS listener pointing at this --dir's ca.crt, "
                          "broker.crt, broker.key and crl.pem and at the hcp.acl written beside it.")
    conf.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="where Mosquitto includes them from")
    conf.add_argument("--port", type=int, default=8883, help="the TLS listener's port (default 8883)")
    conf.add_argument("--bind", metavar="ADDRESS", help="listen on this address only (default: all)")
    conf.set_defaults(func=pki_broker_config)
    revoke = sub.add_parser("revoke", help="revoke a certificate and rewrite the CRL",
                            description="Revoke every valid certificate of NAME and rewrite crl.pem; then "
                            "restart Mosquitto so it reads the new CRL.")
    revoke.add_argument("name", help="device id or service name")
    revoke.set_defaults(func=pki_revoke)
    crl = sub.add_parser("crl", help="re-sign the CRL (renew it before it expires)",
                         description="Write a fresh crl.pem valid for a year; run it from a yearly timer.")
    crl.set_defaults(func=lambda a: _pki(a).write_crl() and 0)
    listing = sub.add_parser("list", help="list issued certificates and the CRL's expiry",
                             description="Every issued certificate (the broker's too) with its expiry, and the "
                             "CRL's; a warning when the CRL expires within 30 days.")
    listing.set_defaults(func=pki_list)


def _pki(args: argparse.Namespace):
    from hcp.pki import Pki

    return Pki(args.dir)


def pki_init(args: argparse.Namespace) -> int:
    _pki(args).init(args.name)
    print(f"CA created in {args.dir}")
    return 0


def pki_device(args: argparse.Namespace) -> int:
    print(_pki(args).issue_device(args.device_id))
    return 0


def pki_service(args: argparse.Namespace) -> int:
    print(_pki(args).issue_service(args.name))
    return 0


def pki_broker(args: argparse.Namespace) -> int:
    print(_pki(args).issue_broker(args.hosts))
    return 0


def pki_broker_config(args: argparse.Namespace) -> int:
    from hcp.pki import mosquitto_config

    pki = _pki(args)
    missing = [name for name in ("ca.crt", "broker.crt", "broker.key", "crl.pem") if not (pki.dir / name).exists()]
    if missing:
        raise HcpError(f"{pki.dir}: no {', '.join(missing)}; run 'hcp pki --dir {pki.dir} init' and "
                       f"'hcp pki --dir {pki.dir} broker HOST' first")
    for path in mosquitto_config(pki.dir, args.out_dir, f"{args.port} {args.bind}" if args.bind else str(args.port)):
        print(f"wrote {path}")
    print(f"mosquitto reads {pki.dir / 'broker.key'}: chgrp mosquitto it and chmod 0640, then restart mosquitto")
    return 0


def pki_revoke(args: argparse.Namespace) -> int:
    count = _pki(args).revoke(args.name)
    print(f"revoked {count} certificate(s) of {args.name}; restart mosquitto to load {args.dir / 'crl.pem'}")
    return 0


def pki_list(args: argparse.Namespace) -> int:
    import datetime as dt

    from hcp.cli.display import table
    from hcp.pki import crl_warning

    pki = _pki(args)
    rows = [(item.name, item.kind, f"{item.serial:x}",
             f"revoked {china_time(item.revoked_at)}" if item.revoked_at else "valid", china_time(item.not_after))
            for item in pki.issued()]
    print(table(("name", "kind", "serial", "state", "valid until (China time)"), rows))
    print(f"CRL {pki.crl_path}: valid until {china_time(pki.crl_next_update())} (China time)")
    warning = crl_warning(pki.crl_path, dt.datetime.now(dt.UTC))
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


# ---- provision -----------------------------------------------------------------

_FLAGS = {"device_id": "this terminal's device id", "hall_id": "hall id", "window_id": "window id",
          "hall_name": "hall name on the idle screen", "window_name": "window name on the idle screen",
          "broker": "broker HOST:PORT", "ca_file": "device CA certificate from the operator",
          "cert_file": "this terminal's certificate", "key_file": "this terminal's private key",
          "policy": "policy preset", "display_size": "800x480 or 1024x600",
          "orientation": "landscape or portrait", "volume": "voice volume 0-1", "data_dir": "data directory",
          "serial_port": "button board serial port", "clerk_port": "clerk link serial port",
          "star_pins": "five BCM pins of the star keys, e.g. '5 6 13 19 26'",
          "receipt_key_file": "the receipt QR key, the same file as the collector's receipt.key_file (installed "
          "0600 beside the certificates; without it the touchscreen shows no QR)",
          "receipt_url": "the receipt QR's URL, with {case_id} and {token}, e.g. "
          "https://hcp.example.gov.cn/r/{case_id}?t={token} (the collector's [web] page behind your proxy)"}


def _register_provision(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "provision", help="set up this terminal: config, certificates, registration request, self-test",
        description="Ask for (or take from flags) everything a terminal needs, validate it, write the config "
        "atomically, install the certificates, write a signed registration request for the operator "
        "('hcp devices import' on the collector binds the terminal to its hall and window) and run the "
        "self-test. With --non-interactive every required value must come from a flag.")
    for key, text in _FLAGS.items():
        p.add_argument(f"--{key.replace('_', '-')}", dest=key, help=text)
    p.add_argument("--frontend", action="append", dest="frontends", metavar="KIND",
                   choices=["sim", "gpio", "serial", "touch", "clerk-serial"], help="front end (repeatable)")
    p.add_argument("--config-out", type=Path, default=Path("/etc/hcp/agent.toml"),
                   help="config file to write (default /etc/hcp/agent.toml)")
    p.add_argument("--pki-dir", type=Path, help="where certificates are installed (default: beside the config, pki/)")
    p.add_argument("--request-out", type=Path,
                   help="registration request to write (default <data-dir>/registration-<id>.json)")
    p.add_argument("--non-interactive", action="store_true", help="no questions: flags and defaults only")
    p.add_argument("--no-selftest", action="store_true", help="skip the self-test at the end")
    p.set_defaults(func=provision)


def provision(args: argparse.Namespace) -> int:
    from hcp.agent import provision as prov
    from hcp.registration import Binding, make_request

    given = {k: getattr(args, k) for k in (*_FLAGS, "frontends")}
    for key, check in (("star_pins", prov._pins), ("volume", prov._volume)):
        if given[key] is not None:
            try:
                given[key] = check(given[key])
            except ValueError as err:
                raise HcpError(f"--{key.replace('_', '-')}: {err}") from None
    answers = prov.complete(given) if args.non_interactive else prov.interview(given, _ask, print)
    pki_dir = args.pki_dir or args.config_out.parent / "pki"
    data = prov.config_data(answers, pki_dir)
    config = prov.validate(data)
    prov.install_certificates(answers, pki_dir)
    prov.write_config(args.config_out, data)
    print(f"wrote {args.config_out}")
    request = make_request(Binding(config.device.id, config.device.hall_id, config.device.window_id),
                           Path(data["broker"]["cert_file"]), Path(data["broker"]["key_file"]))
    out = args.request_out or config.data.dir / f"registration-{config.device.id}.json"
    prov.write_atomic(out, json.dumps(request, ensure_ascii=False, indent=1).encode())
    print(f"wrote the registration request {out}: give it to the operator for 'hcp devices import'")
    if args.no_selftest:
        return 0
    return _selftest(config, interactive=not args.non_interactive)


def _ask(prompt: str) -> str:
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    if not line:
        raise HcpError("input ended before provisioning was complete")
    return line.rstrip("\n")


# ---- selftest and status -------------------------------------------------------

def _register_selftest(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "selftest", help="check this terminal: keys, LEDs, screen, audio, ports, broker, clock, disk, outbox",
        description="Run every check and print a PASS/FAIL report; exit 1 if anything failed. Steps that need "
        "a person ask on the terminal's screen and take the answer from its star keys (5 = yes, 1 = no). "
        "Stop the agent first (systemctl stop hcp-agent): the self-test needs its devices.")
    p.add_argument("-c", "--config", type=Path, default=Path("/etc/hcp/agent.toml"), help="the agent config")
    p.add_argument("--non-interactive", action="store_true",
                   help="skip the steps that need a person (for automation); they are reported as SKIP")
    p.add_argument("--key-timeout", type=float, default=30, help="seconds to wait for each key press")
    p.set_defaults(func=run_selftest)


def run_selftest(args: argparse.Namespace) -> int:
    from hcp.config.schema import AgentConfig, load_config

    return _selftest(load_config(AgentConfig, args.config), interactive=not args.non_interactive,
                     key_timeout_s=args.key_timeout)


def _selftest(config, *, interactive: bool, key_timeout_s: float = 30) -> int:
    from hcp.agent.frontends import build_frontends
    from hcp.agent.selftest import SelfTest, report

    frontends = build_frontends(config) if interactive else []
    try:
        steps = SelfTest(config, frontends, interactive=interactive, key_timeout_s=key_timeout_s).run()
    finally:
        for frontend in frontends:
            frontend.close()
    text, ok = report(steps)
    print(text)
    return 0 if ok else 1


def _register_status(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status", help="this terminal's state: outbox, last ack, broker, clock, version",
        description="Read the agent's status file and its outbox (no need to stop the agent): outbox depth, "
        "oldest unsent rating, last ack, broker link, clock sync, settings version, software version.")
    p.add_argument("-c", "--config", type=Path, default=Path("/etc/hcp/agent.toml"), help="the agent config")
    p.add_argument("--data-dir", type=Path, help="data directory (instead of the config's)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    p.set_defaults(func=show_status)


def show_status(args: argparse.Namespace) -> int:
    from hcp import __version__
    from hcp.agent.selftest import terminal_status

    if args.data_dir is None:
        from hcp.config.schema import AgentConfig, load_config

        args.data_dir = load_config(AgentConfig, args.config).data.dir
    facts = terminal_status(args.data_dir)
    facts["installed_version"] = __version__
    if args.json:
        print(json.dumps(facts, ensure_ascii=False))
        return 0
    status = facts.get("status", {})
    link = {True: "connected", False: "DISCONNECTED", None: "unknown"}[facts.get("link_up")]
    for label, value in (("outbox depth", facts.get("outbox_depth", 0)),
                         ("oldest unsent", china_time(facts.get("oldest_unsent_at"), seconds=True)),
                         ("last ack", china_time(facts.get("last_ack_at") or facts.get("last_outcome_at"),
                                                 seconds=True)),
                         ("broker", f"{facts.get('broker', '-')} {link}"),
                         ("clock", {True: "synchronised", False: "NOT synchronised"}.get(status.get("clock_synced"),
                                                                                          "unknown")),
                         ("settings", status.get("settings_version", "-")),
                         ("version", f"{__version__} (agent reported {status.get('version', '-')})"),
                         ("as of", china_time(facts.get("written_at"), seconds=True) + " (China time)")):
        print(f"{label:<14} {value}")
    if facts.get("note"):
        print(facts["note"])
    return 0


# ---- push-settings -------------------------------------------------------------

def _register_push(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "push-settings", help="push remote settings to a terminal or every terminal of a hall",
        description="Publish a retained, versioned settings message on {prefix}/dev/{id}/config. The terminal "
        "validates it, applies it, saves it and reports the version in its status; a bad push is refused "
        "and the last good settings stay. --hall looks the hall's terminals up in the collector database.")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--device", action="append", metavar="ID", help="a terminal (repeatable)")
    target.add_argument("--hall", help="every registered terminal of this hall")
    p.add_argument("--version", type=int, required=True, dest="settings_version",
                   help="settings version; must be higher than the one the terminal runs")
    p.add_argument("--prompt-timeout", type=float, help="seconds before a prompt expires unrated")
    p.add_argument("--response-interval", type=float, help="presses this soon after an accepted one are ignored")
    p.add_argument("--volume", type=float, help="voice volume 0-1")
    p.add_argument("--policy-profile", help="policy preset the terminal uses")
    add_broker_flags(p)
    p.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help="collector data directory (for --hall)")
    p.add_argument("--database", metavar="FILE|URL", default=argparse.SUPPRESS,
                   help="collector SQLite file or postgresql:// URL (for --hall)")
    p.set_defaults(func=push_settings)


def push_settings(args: argparse.Namespace) -> int:
    from hcp.cli.central import collector_config, open_store
    from hcp.collector.push import push_settings as push
    from hcp.protocol import SettingsMessage

    config = collector_config(args)
    message = SettingsMessage(v=1, version=args.settings_version, prompt_timeout_s=args.prompt_timeout,
                              response_interval_s=args.response_interval, volume=args.volume,
                              policy_preset=args.policy_profile)
    devices = args.device
    if args.hall:
        with open_store(args) as store:
            devices = [d.device_id for d in store.devices() if d.hall_id == args.hall]
        if not devices:
            raise HcpError(f"--hall: no registered terminal in hall {args.hall}")
    for device in push(config.broker, devices, message):
        print(f"pushed settings version {message.version} to {device}")
    return 0


# ---- install-service -----------------------------------------------------------

def _register_install(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "install-service", help="install the systemd unit of the agent or the collector",
        description="Create the hcp user (groups gpio, dialout, video, audio where they exist), the data "
        "directory, and install systemd/hcp-ROLE.service (the collector also hcp-crl.service and .timer, which "
        "re-sign the CRL monthly); then enable and start them. --root installs into "
        "another tree (an image being built, or a test) and skips user and systemctl steps.")
    p.add_argument("role", choices=["agent", "collector"], help="which service")
    p.add_argument("--root", type=Path, default=Path("/"), help="install under this root (default /)")
    p.add_argument("--data-dir", type=Path, default=Path("/var/lib/hcp"), help="data directory to create")
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    p.set_defaults(func=install_service)


def install_service(args: argparse.Namespace) -> int:
    import grp
    import shutil
    import subprocess

    unit = f"hcp-{args.role}.service"
    units = [unit, *(("hcp-crl.service", "hcp-crl.timer") if args.role == "collector" else ())]
    enabled = [unit, *(("hcp-crl.timer",) if args.role == "collector" else ())]
    groups = [g for g in ("gpio", "dialout", "video", "audio", "input", "render") if _group_exists(grp, g)]
    commands = []
    if args.root == Path("/"):
        commands = [["useradd", "--system", "--home-dir", str(args.data_dir), "--shell", "/usr/sbin/nologin",
                     "--user-group", "hcp"],
                    *([["usermod", "-aG", ",".join(groups), "hcp"]] if groups and args.role == "agent" else []),
                    ["install", "-d", "-o", "hcp", "-g", "hcp", "-m", "0750", str(args.data_dir)],
                    ["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", *enabled]]
    folder = args.root / "etc/systemd/system"
    if args.dry_run:
        for name in units:
            print(f"install {UNITS / name} {folder / name}")
        for command in commands:
            print(" ".join(command))
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    for name in units:
        shutil.copyfile(UNITS / name, folder / name)
        print(f"installed {folder / name}")
    for command in commands:
        result = subprocess.run(command, check=False)
        if result.returncode and command[0] != "useradd":  # useradd fails when the user exists: fine
            raise HcpError(f"{' '.join(command)} failed with status {result.returncode}")
    return 0


def _group_exists(grp, name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
