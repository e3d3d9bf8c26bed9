"""Technicians and the fleet: clock placement, fleet health, registration, provisioning, self-test,
remote settings, systemd notify and units, and rater privacy in the logs."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hcp.agent.remote import FILE_NAME
from hcp.agent.runtime import Agent
from hcp.agent.selftest import SelfTest, report
from hcp.cli import main
from hcp.collector.fleet import Thresholds, assess
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.config.schema import AgentConfig, load_config
from hcp.device.sim_panel import SimPanel
from hcp.domain import CST, china_date, now_cst
from hcp.pki import Pki, PkiError
from hcp.protocol import Rating, RatingMessage, SettingsMessage, StatusMessage, Topics, encode
from hcp.registration import Binding, make_request, verify_request
from hcp.sdnotify import Notifier
from hcp.sync.mqtt import LinkSettings, MqttLink

ROOT = Path(__file__).resolve().parent.parent
T = Topics()


# ---- clock: unsynced ratings placed by the collector ----------------------------

@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "c.sqlite", load_profile("ulanqab"), load_or_create_key(tmp_path / "k")) as s:
        s.register_device("t1", "h1", "w1")
        yield s


def _rating(rated_at: datetime, uptime_s: float, boot: str = "boot-a") -> RatingMessage:
    rating = Rating(rating_id=uuid.uuid4().hex, seq=1, kind="service", case_ids=["C1"], score=4, rated_at=rated_at,
                    clock_synced=False, boot_id=boot, uptime_s=uptime_s)
    return RatingMessage(v=1, device_id="t1", ratings=[rating])


def _day_of(store: Store, message: RatingMessage) -> str:
    return store._conn.execute("SELECT day FROM ratings WHERE rating_id = ?",
                               (message.ratings[0].rating_id,)).fetchone()[0]


@pytest.mark.parametrize("terminal_clock", [datetime(2000, 1, 1, 8, 0, tzinfo=CST), "a year ahead"])
def test_unsynced_ratings_are_placed_by_uptime(store, terminal_clock):
    # The collector hears a status at 00:30 CST (uptime 5000 s); the rating was made at uptime 2000 s,
    # i.e. 50 minutes earlier: 23:40 the day before. It arrives at 00:40.
    status_at = datetime(2024, 5, 7, 0, 30, tzinfo=CST)
    wrong = terminal_clock if isinstance(terminal_clock, datetime) else status_at + timedelta(days=365)
    status = StatusMessage(v=1, device_id="t1", state="online", clock_synced=False, at=wrong, boot_id="boot-a",
                           uptime_s=5000)
    assert store.record_status("t1", status, status_at)
    message = _rating(wrong, uptime_s=2000)
    with store.batch():
        store.ingest("t1", message, status_at + timedelta(minutes=10))
    assert _day_of(store, message) == "2024-05-06"


def test_unsynced_rating_of_another_boot_falls_back_to_receipt(store):
    received = datetime(2024, 5, 7, 0, 40, tzinfo=CST)
    store.record_status("t1", StatusMessage(v=1, device_id="t1", state="online", boot_id="boot-a", uptime_s=5000),
                        received - timedelta(minutes=10))
    message = _rating(datetime(2000, 1, 1, tzinfo=CST), uptime_s=10, boot="boot-b")
    with store.batch():
        store.ingest("t1", message, received)
    assert _day_of(store, message) == china_date(received).isoformat()


# ---- fleet health ----------------------------------------------------------------

def test_fleet_alerts_offline_and_growing_outbox(store, tmp_path, capsys):
    now = now_cst()
    store.register_device("t2", "h1", "w2")
    store.register_device("t3", "h1", "w3")
    store.record_status("t1", StatusMessage(v=1, device_id="t1", state="online", version="0.1.0", outbox_depth=0,
                                            clock_synced=True, settings_version=3), now)
    store.record_status("t2", StatusMessage(v=1, device_id="t2", state="offline"), now - timedelta(hours=2))
    store.record_status("t3", StatusMessage(v=1, device_id="t3", state="online", outbox_depth=500,
                                            oldest_unsent_at=now - timedelta(hours=3), clock_synced=False), now)
    health = {h.device_id: h for h in (assess(r, now, Thresholds()) for r in store.fleet())}
    assert health["t1"].online and health["t1"].alerts == [] and health["t1"].settings_version == 3
    assert not health["t2"].online and health["t2"].alerts == ["offline for 2.0 h"]
    assert health["t3"].online and any("outbox holds 500" in a for a in health["t3"].alerts)
    assert any("not draining" in a for a in health["t3"].alerts)
    store.close()
    args = ["devices", "--database", str(tmp_path / "c.sqlite"), "--data-dir", str(tmp_path)]
    os.replace(tmp_path / "k", tmp_path / "collector.key")
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "OFFLINE" in table and "online" in table and "UNSYNC" in table
    assert main([*args, "alerts"]) == 1
    assert "t2\th1/w2\toffline" in capsys.readouterr().out


# ---- registration requests -------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.init()
    for name in ("t1", "t9"):
        pki.issue_device(name)
    pki.revoke("t9")
    return pki


def test_registration_request_import(pki, tmp_path, capsys):
    request = make_request(Binding("t1", "h7", "w4"), pki.cert_path("t1"), pki.key_path("t1"))
    path = tmp_path / "req.json"
    path.write_text(json.dumps(request))
    assert main(["devices", "--data-dir", str(tmp_path), "import", str(path), "--ca", str(pki.ca_cert_path)]) == 0
    assert main(["devices", "--data-dir", str(tmp_path), "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(r["device_id"], r["hall_id"], r["window_id"]) for r in rows] == [("t1", "h7", "w4")]


def test_registration_requests_that_must_fail(pki, tmp_path):
    good = make_request(Binding("t1", "h1", "w1"), pki.cert_path("t1"), pki.key_path("t1"))
    tampered = json.loads(json.dumps(good))
    tampered["request"]["window_id"] = "w9"
    with pytest.raises(PkiError, match="signature"):
        verify_request(tampered, pki.ca_cert_path, pki.crl_path)
    renamed = json.loads(json.dumps(good))
    renamed["request"]["device_id"] = "t2"
    with pytest.raises(PkiError, match="certificate is for t1"):
        verify_request(renamed, pki.ca_cert_path, pki.crl_path)
    revoked = make_request(Binding("t9", "h1", "w1"), pki.cert_path("t9"), pki.key_path("t9"))
    with pytest.raises(PkiError, match="revoked"):
        verify_request(revoked, pki.ca_cert_path, pki.crl_path)
    foreign = Pki(tmp_path / "other")
    foreign.init()
    foreign.issue_device("t1")
    forged = make_request(Binding("t1", "h1", "w1"), foreign.cert_path("t1"), foreign.key_path("t1"))
    with pytest.raises(PkiError, match="not issued by this device CA"):
        verify_request(forged, pki.ca_cert_path, pki.crl_path)


def test_pki_list_shows_the_broker_and_warns_before_the_crl_expires(tmp_path, capsys):
    pki = Pki(tmp_path / "pki")
    pki.init()
    pki.issue_device("t1")
    pki.issue_broker(["mqtt.hall.local"])
    assert main(["pki", "--dir", str(pki.dir), "list"]) == 0
    out, err = capsys.readouterr()
    rows = [line.split() for line in out.splitlines()[2:4]]
    assert [(row[0], row[1], row[3]) for row in rows] == [("t1", "device", "valid"),
                                                          ("mqtt.hall.local", "broker", "valid")]
    assert rows[1][4] > "2035-"  # the broker's certificate and when it runs out (ten years)
    assert "CRL " in out and err == ""
    pki.write_crl(days=10)
    assert main(["pki", "--dir", str(pki.dir), "list"]) == 0
    assert "WARNING: the CRL" in capsys.readouterr().err


def test_broker_config_points_mosquitto_at_the_chosen_directory(tmp_path, capsys):
    pki = Pki(tmp_path / "my pki")
    pki.init()
    out = tmp_path / "conf.d"
    assert main(["pki", "--dir", str(pki.dir), "broker-config", str(out)]) == 2
    assert "no broker.crt, broker.key" in capsys.readouterr().err
    pki.issue_broker(["mqtt.hall.local"])
    listener = ["--port", "18883", "--bind", "127.0.0.1"]
    assert main(["pki", "--dir", str(pki.dir), "broker-config", str(out), *listener]) == 0
    tls = (out / "hcp-tls.conf").read_text()
    settings = "".join(line for line in tls.splitlines(keepends=True) if not line.startswith("#"))
    assert "/etc/" not in settings and f"crlfile {pki.dir.resolve()}/crl.pem" in tls
    assert "listener 18883 127.0.0.1" in tls and f"acl_file {out.resolve()}/hcp.acl" in tls
    assert (out / "hcp.acl").exists() and (out / "hcp.conf").exists()


def test_devices_warns_when_the_brokers_crl_runs_out(tmp_path, capsys):
    pki = Pki(tmp_path / "pki")
    pki.init()
    config = tmp_path / "collector.toml"
    config.write_text(f'[data]\ndir = "{tmp_path}"\n[broker]\nca_file = "{pki.ca_cert_path}"\n')
    args = ["devices", "-c", str(config)]
    assert main(args) == 0 and "WARNING" not in capsys.readouterr().err  # a fresh CRL: a year left
    pki.write_crl(days=3)
    assert main(args) == 0
    assert "expires on" in capsys.readouterr().err
    assert main([*args, "alerts"]) == 1  # monitoring hears of it too
    assert "Mosquitto will then refuse every client" in capsys.readouterr().out


# ---- provisioning ----------------------------------------------------------------

def _provision_flags(pki: Pki, tmp_path: Path) -> list[str]:
    return ["--ca-file", str(pki.ca_cert_path), "--cert-file", str(pki.cert_path("t1")),
            "--key-file", str(pki.key_path("t1")), "--config-out", str(tmp_path / "etc" / "agent.toml"),
            "--data-dir", str(tmp_path / "data"), "--no-selftest"]


def test_provision_by_flags(pki, tmp_path, capsys):
    assert main(["provision", "--non-interactive", "--device-id", "t1", "--hall-id", "h1", "--window-id", "w1",
                 "--broker", "127.0.0.1:8883", "--frontend", "gpio", "--star-pins", "5 6 13 19 26",
                 "--policy", "ulanqab", *_provision_flags(pki, tmp_path)]) == 0
    config = load_config(AgentConfig, tmp_path / "etc" / "agent.toml")
    assert config.device.id == "t1" and config.broker.port == 8883 and config.gpio.star_pins == (5, 6, 13, 19, 26)
    assert (config.broker.key_file.stat().st_mode & 0o777) == 0o600
    request = json.loads((tmp_path / "data" / "registration-t1.json").read_text())
    assert verify_request(request, pki.ca_cert_path) == Binding("t1", "h1", "w1")
    assert not list((tmp_path / "etc").glob(".agent.toml.*"))  # no temp file left behind


def test_provision_missing_flag_names_it(pki, tmp_path, capsys):
    assert main(["provision", "--non-interactive", "--device-id", "t1", *_provision_flags(pki, tmp_path)]) == 2
    assert "--hall-id" in capsys.readouterr().err


def test_provision_interactive_re_asks_and_takes_defaults(pki, tmp_path, capsys, monkeypatch):
    answers = ["bad id!", "t1", "h1", "w1", "", "3号窗口", "sim", "nohost", "mqtt.local:8883", "", "2", "0.5", ""]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(answers) + "\n"))
    flags = _provision_flags(pki, tmp_path)
    assert main(["provision", *flags]) == 0
    out = capsys.readouterr().out
    assert "expected 1-64" in out and "expected HOST:PORT" in out and "expected a number from 0 to 1" in out
    config = load_config(AgentConfig, tmp_path / "etc" / "agent.toml")
    assert (config.device.window_name, config.broker.host, config.voice.volume) == ("3号窗口", "mqtt.local", 0.5)
    assert config.policy.preset == "henan" and config.frontend.kinds == ["sim"]


def test_provision_installs_the_receipt_key_or_says_there_is_none(pki, tmp_path, capsys):
    key = tmp_path / "receipt.key"
    key.write_text("a-receipt-key-shared-with-the-page\n")
    touch = ["--non-interactive", "--device-id", "t1", "--hall-id", "h1", "--window-id", "w1", "--frontend", "touch"]
    url = "https://rate.example.gov.cn/r/{case_id}?t={token}"
    assert main(["provision", *touch, "--receipt-key-file", str(key), "--receipt-url", url,
                 *_provision_flags(pki, tmp_path)]) == 0
    config = load_config(AgentConfig, tmp_path / "etc" / "agent.toml")
    assert config.receipt.url_template == url and config.receipt.load_key() == b"a-receipt-key-shared-with-the-page"
    assert config.receipt.key_file == tmp_path / "etc" / "pki" / "receipt.key"
    assert (config.receipt.key_file.stat().st_mode & 0o777) == 0o600
    assert main(["provision", *touch, *_provision_flags(pki, tmp_path)]) == 0  # no key: receipts off, said so
    assert load_config(AgentConfig, tmp_path / "etc" / "agent.toml").receipt.enabled is False


def test_selftest_says_when_the_screen_would_show_no_receipt_qr(tmp_path, broker):
    def receipt_step(receipt: dict) -> tuple[str, str]:
        config = _agent_config(tmp_path, broker, frontend={"kinds": ["touch"]}, receipt=receipt)
        [step] = SelfTest(config, [], interactive=False).check_receipt()
        return step.result, step.detail

    result, detail = receipt_step({})
    assert result == "FAIL" and "no receipt.key_file or key" in detail
    assert receipt_step({"enabled": False})[0] == "PASS"
    assert receipt_step({"key": "k" * 32}) == ("PASS", "QR to https://hcp.example.gov.cn/r/{case_id}?t={token}")


def test_receipt_prints_a_url_the_page_accepts(tmp_path, capsys):
    from urllib.parse import parse_qs, urlsplit

    from hcp.ui.receipt import verify

    config = tmp_path / "collector.toml"
    (tmp_path / "receipt.key").write_text("a-receipt-key-shared-with-the-page")
    (tmp_path / "receipt.key").chmod(0o600)
    config.write_text(f'[data]\ndir = "{tmp_path}"\n[receipt]\nkey_file = "{tmp_path / "receipt.key"}"\n'
                      'url_template = "https://rate.example.gov.cn/r/{case_id}?t={token}"\n')
    assert main(["receipt", "C-2026/1", "-c", str(config), "--at", "2026-03-09T15:20"]) == 0
    out, err = capsys.readouterr()
    url = urlsplit(out.strip())
    assert url.path == "/r/C-2026%2F1" and "valid until 2026-03-16 15:20 (China time)" in err
    token = parse_qs(url.query)["t"][0]
    assert verify(token, "C-2026/1", b"a-receipt-key-shared-with-the-page", 1773040800 + 60) == 1773040800 + 7 * 86400
    config.write_text(f'[data]\ndir = "{tmp_path}"\n')
    assert main(["receipt", "C1", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "receipt: no key_file or key" in err and err.count("\n") == 1


# ---- self-test and status --------------------------------------------------------

def _agent_config(tmp_path: Path, broker, **extra) -> AgentConfig:
    return AgentConfig.model_validate({
        "device": {"id": "t1", "hall_id": "h1", "window_id": "w1"},
        "broker": {"host": broker.host, "port": broker.port, "reconnect_max_s": 0.5},
        "data": {"dir": str(tmp_path / "data")}, "clock": {"synced": "yes"}, **extra})


def test_selftest_interactive_through_the_sim_panel(tmp_path, broker):
    read_fd, write_fd = os.pipe()
    keys = os.fdopen(write_fd, "w")
    out = io.StringIO()
    panel = SimPanel(input=os.fdopen(read_fd), output=out)
    said: list[str] = []

    def say(text: str) -> None:
        said.append(text)
        for score in range(1, 6):
            if text == f"请按 {score} 星":
                keys.write(f"press {score if score != 4 else 3}\n")  # the 4 key is broken: it sends 3
        if "正常请按" in text:
            keys.write("press 5\n" if "星键灯" in text or "屏幕" in text else "press 1\n")
        keys.flush()

    steps = SelfTest(_agent_config(tmp_path, broker), [panel], say=say, key_timeout_s=5).run()
    panel.close()
    keys.close()
    results = {s.name: s.result for s in steps}
    assert results["star 1"] == results["star 5"] == "PASS" and results["star 4"] == "FAIL"
    assert (results["leds"], results["screen"], results["audio"]) == ("PASS", "PASS", "FAIL")
    assert results["broker"] == results["disk"] == results["outbox"] == results["clock"] == "PASS"
    assert "请按 1 星" in out.getvalue()  # on the terminal's own screen too
    text, ok = report(steps)
    assert not ok and "SELFTEST FAIL" in text


def test_selftest_non_interactive_and_a_dead_broker(tmp_path, broker, capsys):
    config = tmp_path / "agent.toml"
    config.write_text(f'[device]\nid = "t1"\nhall_id = "h1"\nwindow_id = "w1"\n[broker]\nport = {broker.port}\n'
                      f'[data]\ndir = "{tmp_path}"\n[clock]\nsynced = "yes"\n')
    assert main(["selftest", "--config", str(config), "--non-interactive"]) == 0
    out = capsys.readouterr().out
    assert "SKIP  stars" in out and "SELFTEST PASS" in out
    broker.stop()
    assert main(["selftest", "--config", str(config), "--non-interactive"]) == 1
    assert "FAIL  broker" in capsys.readouterr().out


# ---- remote settings, status, notify ----------------------------------------------

def _operator(broker) -> MqttLink:
    link = MqttLink(LinkSettings(broker.host, broker.port, f"op-{uuid.uuid4().hex[:6]}", clean_start=True),
                    lambda _m: None)
    link.start()
    assert link.wait_connected(10)
    return link


def _wait(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_remote_settings_applied_refused_and_kept(tmp_path, broker, capsys):
    config = _agent_config(tmp_path, broker, sync={"status_interval_s": 0.2})
    stop = threading.Event()
    beats: list[float] = []
    agent = Agent(config, [])
    runner = threading.Thread(target=agent.run, args=(stop, lambda: beats.append(time.monotonic())))
    runner.start()
    operator = _operator(broker)
    try:
        assert _wait(lambda: agent.link.connected)
        good = SettingsMessage(v=1, version=2, prompt_timeout_s=45, volume=0.3, policy_preset="ulanqab")
        operator.publish(T.config("t1"), encode(good), retain=True, wait_s=10)
        assert _wait(lambda: agent.settings_version == 2)
        assert agent.config.timing.prompt_timeout_s == 45 and agent.config.voice.volume == 0.3
        bad = b'{"v":1,"version":3,"volume":7}'
        operator.publish(T.config("t1"), bad, retain=True, wait_s=10)
        old = SettingsMessage(v=1, version=1, prompt_timeout_s=5)
        operator.publish(T.config("t1"), encode(old), retain=True, wait_s=10)
        time.sleep(0.5)
        assert agent.settings_version == 2 and agent.config.timing.prompt_timeout_s == 45
        assert _wait(lambda: json.loads((tmp_path / "data" / "status.json").read_text())["status"]
                     .get("settings_version") == 2)
        assert beats, "the loop calls its heartbeat"
    finally:
        operator.close()
        stop.set()
        runner.join(10)
        agent.close()
    assert json.loads((tmp_path / "data" / FILE_NAME).read_text())["version"] == 2
    again = Agent(config, [])  # after a restart, offline: the saved settings are in force
    try:
        assert again.settings_version == 2 and again.config.timing.prompt_timeout_s == 45
    finally:
        again.close()
    assert main(["status", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "outbox depth" in out and "settings       2" in out and "synchronised" in out


def test_notify_socket_ready_and_watchdog(tmp_path, broker):
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(20)
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}
        proc = subprocess.Popen([sys.executable, "-m", "hcp.cli", "agent", "--device-id", "t1", "--hall", "h1",
                                 "--window", "w1", "--broker", f"127.0.0.1:{broker.port}", "--data-dir",
                                 str(tmp_path / "data")], env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            got = [sock.recv(256).decode() for _ in range(3)]
        finally:
            proc.terminate()
            proc.wait(20)
        assert got[0].startswith("READY=1") and got[1:] == ["WATCHDOG=1", "WATCHDOG=1"]


def test_notifier_rate_limits_and_is_a_no_op_outside_systemd():
    ticks = iter([0.0, 0.1, 0.6, 0.7])
    sent: list[str] = []
    notifier = Notifier("@x", 1_000_000, clock=lambda: next(ticks))
    notifier.send = sent.append  # type: ignore[method-assign]
    for _ in range(4):
        notifier.watchdog()
    assert sent == ["WATCHDOG=1", "WATCHDOG=1"]
    Notifier.from_env({}).ready()  # no socket: nothing happens


# ---- systemd units ---------------------------------------------------------------

@pytest.mark.parametrize("role", ["agent", "collector"])
def test_units_verify_and_are_hardened(tmp_path, role):
    text = (ROOT / "systemd" / f"hcp-{role}.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=always", "ProtectSystem=strict", "ReadWritePaths=/var/lib/hcp",
                 "NoNewPrivileges=true", "PrivateTmp=true", "StandardError=journal", "User=hcp"):
        assert line in text, line
    if role == "agent":
        assert "SupplementaryGroups=gpio dialout video audio" in text
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: run 'make deps' (scripts/install-deps.sh installs systemd)"
    unit = tmp_path / f"hcp-{role}.service"
    unit.write_text(text.replace("/opt/hcp/.venv/bin/hcp", str(Path(sys.executable).with_name("hcp"))))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "hcp-" not in result.stderr or "Unknown" not in result.stderr


def test_install_service_into_a_root(tmp_path, capsys):
    assert main(["install-service", "agent", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "etc/systemd/system/hcp-agent.service").read_text().startswith("[Unit]")
    assert main(["install-service", "collector", "--dry-run"]) == 0
    assert "systemctl enable --now hcp-collector.service hcp-crl.timer" in capsys.readouterr().out
    assert main(["install-service", "collector", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "etc/systemd/system/hcp-crl.timer").exists()


def test_the_crl_timer_verifies_and_re_signs_the_crl(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: run 'make deps' (scripts/install-deps.sh installs systemd)"
    timer = (ROOT / "systemd" / "hcp-crl.timer").read_text()
    service = (ROOT / "systemd" / "hcp-crl.service").read_text()
    assert "OnCalendar=monthly" in timer and "Persistent=true" in timer
    assert "hcp pki --dir /etc/hcp/pki crl" in service and "try-restart mosquitto.service" in service
    (tmp_path / "hcp-crl.timer").write_text(timer)
    (tmp_path / "hcp-crl.service").write_text(service.replace("/opt/hcp/.venv/bin/hcp",
                                                              str(Path(sys.executable).with_name("hcp"))))
    result = subprocess.run([analyze, "verify", str(tmp_path / "hcp-crl.timer")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---- logs: no rater identity -----------------------------------------------------

def test_logs_of_an_end_to_end_run_hold_no_rater_identity(tmp_path, broker):
    from stack import AgentProcess, CollectorProcess

    applicant = "110101199003078888"
    collector = CollectorProcess(broker, tmp_path / "collector")
    collector.prepare({"t1": ("h1", "w1")}, [])
    agent = AgentProcess(broker, tmp_path / "agent")
    collector.start()
    agent.start()
    try:
        assert _wait(lambda: "connected to" in collector.log.read_text(), 15)
        case = {"case_id": "C77", "hall_id": "h1", "window_id": "w1", "item_code": "I1", "item_name": "营业执照",
                "clerk_id": "E1", "intake": "ok", "applicant_id": applicant,
                "completed_at": datetime.now(UTC).isoformat()}
        cases = tmp_path / "cases.jsonl"
        cases.write_text(json.dumps(case, ensure_ascii=False) + "\n")
        assert main(["cases", str(cases), "--broker", f"127.0.0.1:{broker.port}"]) == 0
        agent.rate("C77", 5)
        assert _wait(lambda: len(collector.rows()) == 1, 15)
    finally:
        agent.stop()
        collector.stop()
    logs = (tmp_path / "collector" / "collector.log").read_text() + (tmp_path / "agent" / "agent.log").read_text()
    assert "stored rating" in logs  # the logs were written
    assert applicant not in logs
