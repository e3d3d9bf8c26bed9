"""One process per identity, terminals that are not there, settings that would go backwards, defaults that
would come early: each refused with one line, against a real Mosquitto and real processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from hcp.cli import main
from hcp.domain import now_cst
from hcp.protocol import SettingsMessage, StatusMessage, Topics, encode
from hcp.sync.mqtt import LinkSettings, MqttLink
from tests.channel_support import KEY, case, open_store

T = Topics()


def _wait(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _running(argv: list[str], lock: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "hcp.cli", *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait(lambda: lock.exists() and f"PID {proc.pid}" in lock.read_text()), "the first instance did not start"
    return proc


@pytest.mark.parametrize("role", ["agent", "collector"])
def test_a_second_instance_is_refused_naming_the_first(role, tmp_path, broker, capsys):
    data = tmp_path / "data"
    argv = [role, "--broker", f"{broker.host}:{broker.port}", "--data-dir", str(data)]
    if role == "agent":
        argv += ["--device-id", "t1", "--hall", "h1", "--window", "w1"]
    first = _running(argv, data / ("agent.lock" if role == "agent" else "collector-collector.lock"))
    try:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"PID {first.pid}" in err and "already runs" in err
    finally:
        first.terminate()
        first.wait(20)
    migrated = main(["migrate", "--data-dir", str(data)]) if role == "collector" else 0
    assert migrated == 0  # the lock is the process's, not the data's: other commands still work


def test_a_takeover_is_named_in_the_log(broker, caplog):
    settings = LinkSettings(host=broker.host, port=broker.port, client_id="twin", clean_start=True,
                            session_expiry_s=0, backoff_min_s=0.1, backoff_max_s=0.2)
    with caplog.at_level(logging.INFO, "hcp.sync.mqtt"), MqttLink(settings, lambda _m: None) as one, \
            MqttLink(settings, lambda _m: None) as two:
        one.start()
        assert one.wait_connected(10)
        two.start()
        assert _wait(lambda: any("another client with id twin" in r.getMessage() for r in caplog.records))
    # Mosquitto 2.0.11 closes the socket without DISCONNECT 142 (paho: "Unspecified error"); newer ones send it.
    named = [r for r in caplog.records if "another client with id twin" in r.getMessage()]
    assert named[0].levelno == logging.ERROR


def _publish(broker, topic: str, payload: bytes) -> None:
    with MqttLink(LinkSettings(broker.host, broker.port, "op-test", clean_start=True), lambda _m: None) as link:
        link.start()
        assert link.wait_connected(10)
        link.publish(topic, payload, retain=True, wait_s=10)


PROMPT = ["--case", "C1", "--item-code", "001", "--item-name", "个体工商户设立登记", "--clerk", "E1"]


def test_prompt_says_when_the_terminal_is_unknown_or_offline(broker, capsys):
    where = ["--broker", f"{broker.host}:{broker.port}"]
    assert main(["prompt", "no-such-device", *PROMPT, *where]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-device is unknown" in err
    at = now_cst() - timedelta(hours=2)
    _publish(broker, T.status("t2"), encode(StatusMessage(v=1, device_id="t2", state="offline", at=at)))
    assert main(["prompt", "t2", *PROMPT, *where]) == 1
    assert f"t2 is offline since {at}" in capsys.readouterr().err
    assert main(["prompt", "t2", *PROMPT, *where, "--queue"]) == 0
    assert "queued for t2" in capsys.readouterr().out
    _publish(broker, T.status("t3"), encode(StatusMessage(v=1, device_id="t3", state="online", at=now_cst())))
    assert main(["prompt", "t3", *PROMPT, *where]) == 0
    assert "prompted t3" in capsys.readouterr().out


def test_push_settings_refuses_an_older_version(broker, capsys):
    where = ["--broker", f"{broker.host}:{broker.port}"]
    assert main(["push-settings", "--device", "t1", "--version", "2", "--volume", "0.5", *where]) == 0
    assert main(["push-settings", "--device", "t1", "--version", "1", "--volume", "0.9", *where]) == 2
    err = capsys.readouterr().err  # one-shot commands log from WARNING up: the refusal alone
    assert err.count("\n") == 1 and "t1 has 2" in err
    retained = []
    with MqttLink(LinkSettings(broker.host, broker.port, "op-read", clean_start=True), retained.append) as link:
        link.subscribe(T.config("t1"))
        link.start()
        assert _wait(lambda: retained)
    assert SettingsMessage.model_validate_json(retained[0].payload).version == 2


def test_defaults_refuses_a_future_time_and_previews_it(tmp_path, capsys):
    now = now_cst()
    with open_store(tmp_path, "ordos") as store:
        store.add_cases([case("OLD", completed=now - timedelta(days=10)), case("NEW", completed=now)], now)
    key = tmp_path / "collector.key"
    key.write_text(KEY.hex())
    key.chmod(0o600)
    flags = ["--data-dir", str(tmp_path), "--policy", "ordos"]
    future = (now + timedelta(days=30)).isoformat()
    assert main(["defaults", "--at", future, *flags]) == 2
    assert "--at" in capsys.readouterr().err
    assert main(["defaults", "--at", future, "--dry-run", *flags]) == 0
    assert "would default 2 case(s)" in capsys.readouterr().out
    assert main(["defaults", "--dry-run", *flags]) == 0
    assert "would default 1 case(s)" in capsys.readouterr().out
    assert main(["defaults", *flags]) == 0  # the previews wrote nothing: the old case is defaulted now
    assert "defaulted 1 case(s)" in capsys.readouterr().out
