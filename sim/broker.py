"""Start and stop a private Mosquitto on a free loopback port (tests, demo, bench)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path

from hcp.exc import HcpError


class BrokerError(HcpError, RuntimeError):
    """Mosquitto is missing or would not start."""


def find_mosquitto() -> str:
    """The mosquitto binary; Debian puts it in /usr/sbin, off a normal user's PATH."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise BrokerError("mosquitto not found: install it with 'sudo apt-get install mosquitto' or 'make deps'")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """A Mosquitto process with the project's settings, its data in ``workdir``.

    ``stop()`` and ``start()`` may be called repeatedly; the port and the
    persistence file stay, so sessions and queued messages survive a restart
    the way they do in production. ``kill()`` is kill -9.
    """

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._extra = extra_conf
        self._proc: subprocess.Popen[bytes] | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "mosquitto.log"

    def _write_conf(self) -> Path:
        base = (resources.files("hcp.config") / "mosquitto" / "hcp.conf").read_text("utf-8")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"{base}\n{self._listener_conf()}\n"
            # Run as whoever started us: as root, mosquitto would switch to its own user
            # and lose access to the work directory.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            f"persistence_location {self.workdir}/\nlog_dest file {self.log_path}\n"
            f"log_type error\nlog_type warning\nlog_type notice\nlog_type information\n{self._extra}\n",
            "utf-8")
        return conf

    def _listener_conf(self) -> str:
        """The listener lines: plain MQTT, anyone may connect (tests and demo)."""
        return f"listener {self.port} 127.0.0.1\nallow_anonymous true"

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts connections."""
        if self.running:
            return
        conf = self._write_conf()
        self._proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise BrokerError(f"mosquitto exited with {self._proc.returncode}: {err.strip()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise BrokerError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop gracefully (SIGTERM): mosquitto writes its persistence file."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """kill -9: whatever was not autosaved is gone, as in a power cut."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def close(self) -> None:
        """Stop the broker; safe to call twice."""
        self.stop()

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TlsBroker(Broker):
    """Mosquitto with the production TLS listener and ACL (config/mosquitto/hcp-tls.conf, hcp.acl).

    The shipped files are used as ``hcp pki broker-config`` writes them, their
    paths pointed at ``pki_dir`` (ca.crt, broker.crt, broker.key, crl.pem) and the
    listener at a free loopback port, so the tests exercise what production runs.
    """

    def __init__(self, workdir: Path, pki_dir: Path, port: int | None = None, extra_conf: str = "") -> None:
        super().__init__(workdir, port, extra_conf)
        self.pki_dir = Path(pki_dir)

    def _listener_conf(self) -> str:
        from hcp.pki import mosquitto_config

        # What `hcp pki broker-config` writes for an operator, so the tests run exactly that.
        mosquitto_config(self.pki_dir, self.workdir / "conf.d", f"{self.port} 127.0.0.1")
        return (self.workdir / "conf.d" / "hcp-tls.conf").read_text("utf-8")
