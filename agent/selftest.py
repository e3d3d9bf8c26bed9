"""``hcp selftest``: every part of a terminal checked, with a PASS/FAIL/SKIP report.

Steps that need a person (star keys, LEDs, screen, audio) talk through the
terminal's own front ends: the screen says "请按 3 星" and the step passes when
that key is pressed; for what only a person can judge (did the LEDs light?)
the technician answers on the keys too, 5 星 for yes and 1 星 for no, so a
terminal without a keyboard can be tested. ``interactive=False`` skips those
steps and says so. The rest (clock, disk, outbox, serial ports, broker) needs
nobody.
"""

from __future__ import annotations

import queue
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hcp.agent.clock import Clock
from hcp.agent.events import Feedback, FrontEnd, PlaySound, Screen, ShowScreen, Sound, StarPressed
from hcp.config.schema import AgentConfig
from hcp.exc import ConfigError, HcpError

MIN_FREE_BYTES = 200 * 1024 * 1024
YES, NO = 5, 1


@dataclass(frozen=True)
class Step:
    """One line of the report."""

    name: str
    result: str  # PASS | FAIL | SKIP
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.result:<4}  {self.name:<10} {self.detail}"


class SelfTest:
    """Runs the checks for one terminal configuration; ``frontends`` must not be started yet."""

    def __init__(self, config: AgentConfig, frontends: list[FrontEnd], *, interactive: bool = True,
                 say: Callable[[str], None] = print, key_timeout_s: float = 30.0, broker_timeout_s: float = 10.0,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.frontends = frontends
        self.interactive = interactive
        self.say = say
        self.key_timeout_s = key_timeout_s
        self.broker_timeout_s = broker_timeout_s
        self.clock = clock or Clock(config.clock.synced)
        self._keys: queue.Queue[int] = queue.Queue()

    def run(self) -> list[Step]:
        """All steps in order; never raises for a failing part."""
        steps = [self.check_clock(), self.check_disk(), self.check_outbox(), *self.check_serial(),
                 *self.check_receipt(), self.check_broker()]
        if not self.interactive:
            return steps + [Step(name, "SKIP", "needs a person (run without --non-interactive)")
                            for name in ("stars", "leds", "screen", "audio")]
        for frontend in self.frontends:
            frontend.start(self._posted)
        return [*steps, *self.check_stars(), self.check_leds(), self.check_screen(), self.check_audio()]

    # -- what needs nobody ---------------------------------------------------

    def check_clock(self) -> Step:
        if self.clock.synced:
            return Step("clock", "PASS", f"synchronised: {self.clock.now():%Y-%m-%d %H:%M:%S}")
        return Step("clock", "FAIL", f"not synchronised (reads {self.clock.now():%Y-%m-%d %H:%M}); check NTP "
                    "(timedatectl); ratings meanwhile carry boot id and uptime")

    def check_disk(self) -> Step:
        folder = self.config.data.dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".selftest-{uuid.uuid4().hex[:8]}"
            probe.write_bytes(b"x")
            probe.unlink()
            free = shutil.disk_usage(folder).free
        except OSError as err:
            return Step("disk", "FAIL", f"{folder} not writable: {err.strerror} (read-only root? see docs/install.md)")
        result = "PASS" if free >= MIN_FREE_BYTES else "FAIL"
        return Step("disk", result, f"{free // 2**20} MiB free in {folder}")

    def check_outbox(self) -> Step:
        path = self.config.data.dir / "outbox.sqlite"
        if not path.exists():
            return Step("outbox", "PASS", "no outbox yet (created on first start)")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
                depth = conn.execute("SELECT count(*) FROM ratings").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error as err:
            return Step("outbox", "FAIL", f"{path}: {err}")
        if verdict != "ok":
            return Step("outbox", "FAIL", f"integrity_check: {verdict}")
        return Step("outbox", "PASS", f"integrity ok, {depth} ratings waiting")

    def check_receipt(self) -> list[Step]:
        """The receipt QR on the touchscreen: a key to sign it with, or a config that says there is none."""
        receipt = getattr(self.config, "receipt", None)
        if receipt is None or "touch" not in self.config.frontend.kinds:
            return []
        if not receipt.enabled:
            return [Step("receipt", "PASS", "off (receipt.enabled = false): no QR on the screen")]
        try:
            key = receipt.load_key()
        except ConfigError as err:
            return [Step("receipt", "FAIL", str(err))]
        if key is None:
            return [Step("receipt", "FAIL", "receipt.enabled but no receipt.key_file or key: the screen shows no "
                         "QR; give the key shared with the rating page, or set receipt.enabled = false")]
        return [Step("receipt", "PASS", f"QR to {receipt.url_template}")]

    def check_serial(self) -> list[Step]:
        ports = {"serial": self.config.serial_board.port, "clerk-serial": self.config.clerk_link.port}
        return [self._open_port(kind, ports[kind]) for kind in self.config.frontend.kinds if kind in ports]

    @staticmethod
    def _open_port(kind: str, port: str) -> Step:
        try:
            import serial  # pyserial, imported only where a serial front end is configured
        except ImportError:
            return Step(kind, "FAIL", "pyserial is not installed")
        try:
            serial.Serial(port, timeout=0).close()
        except (OSError, serial.SerialException) as err:
            return Step(kind, "FAIL", f"{port}: {err} (plugged in? user in group dialout?)")
        return Step(kind, "PASS", f"{port} opens")

    def check_broker(self) -> Step:
        from hcp.pki import certificate_cn
        from hcp.sync.mqtt import LinkSettings, MqttLink, tls_from

        broker = self.config.broker
        where = f"{broker.host}:{broker.port}"
        if broker.cert_file is not None:
            try:
                cn = certificate_cn(broker.cert_file)
            except HcpError as err:
                return Step("broker", "FAIL", str(err))
            if cn != self.config.device.id:
                return Step("broker", "FAIL", f"certificate is for {cn}, device.id is {self.config.device.id}: "
                            "the broker's ACL would refuse every rating")
        settings = LinkSettings(broker.host, broker.port, f"hcp-selftest-{uuid.uuid4().hex[:8]}", clean_start=True,
                                session_expiry_s=0, backoff_max_s=1.0,
                                tls=tls_from(broker.ca_file, broker.cert_file, broker.key_file))
        with MqttLink(settings, lambda _m: None) as link:
            link.start()
            if not link.wait_connected(self.broker_timeout_s):
                how = "TLS handshake or login refused" if broker.ca_file else "no answer"
                return Step("broker", "FAIL", f"cannot connect to {where} ({how}; see the log above)")
        how = f"TLS, identity {self.config.device.id}" if broker.ca_file else "plain MQTT, NO TLS"
        return Step("broker", "PASS", f"connected to {where} ({how})")

    # -- what needs a person -------------------------------------------------

    def _posted(self, event: object) -> None:
        if isinstance(event, StarPressed):
            self._keys.put(event.score)

    def _show(self, text: str) -> None:
        self.say(text)
        self._perform(ShowScreen(Screen.PAUSED, message=text))

    def _perform(self, command: object) -> None:
        for frontend in self.frontends:
            try:
                frontend.perform(command)  # type: ignore[arg-type]
            except Exception as err:  # one broken front end is a FAIL to report, not a crash
                self.say(f"{type(frontend).__name__} failed: {err}")

    def _key(self) -> int | None:
        try:
            return self._keys.get(timeout=self.key_timeout_s)
        except queue.Empty:
            return None

    def check_stars(self) -> list[Step]:
        steps = []
        for score in range(1, 6):
            self._drain()
            self._show(f"请按 {score} 星")
            pressed = self._key()
            if pressed == score:
                steps.append(Step(f"star {score}", "PASS", "pressed"))
            else:
                detail = "no key within the time" if pressed is None else f"got {pressed} 星"
                steps.append(Step(f"star {score}", "FAIL", detail))
        return steps

    def _ask(self, name: str, question: str) -> Step:
        self._drain()
        self._show(f"{question} 正常请按 {YES} 星，不正常请按 {NO} 星")
        answer = self._key()
        if answer == YES:
            return Step(name, "PASS", "confirmed by the technician")
        return Step(name, "FAIL", "no answer" if answer is None else "reported faulty by the technician")

    def check_leds(self) -> Step:
        for score in range(1, 6):
            self._perform(Feedback(score, beep=False))
        self._perform(Feedback(None, beep=False))
        return self._ask("leds", "星键灯是否依次点亮？")

    def check_screen(self) -> Step:
        for screen in (Screen.IDLE, Screen.THANKS, Screen.FAULT):
            self._perform(ShowScreen(screen, message="测试图案 test pattern"))
        return self._ask("screen", "屏幕显示是否完整清晰？")

    def check_audio(self) -> Step:
        self._perform(PlaySound(Sound.PLEASE_RATE))
        return self._ask("audio", "是否听到“请您对本次服务进行评价”？")

    def _drain(self) -> None:
        while not self._keys.empty():
            self._keys.get_nowait()


def report(steps: list[Step]) -> tuple[str, bool]:
    """The report text and whether nothing failed."""
    ok = all(step.result != "FAIL" for step in steps)
    lines = [str(step) for step in steps]
    lines.append(f"SELFTEST {'PASS' if ok else 'FAIL'}: {sum(s.result == 'PASS' for s in steps)} passed, "
                 f"{sum(s.result == 'FAIL' for s in steps)} failed, {sum(s.result == 'SKIP' for s in steps)} skipped")
    return "\n".join(lines), ok


def terminal_status(data_dir: Path) -> dict:
    """What ``hcp status`` shows: the agent's status file plus the outbox read directly."""
    import json

    facts: dict = {}
    try:
        facts = json.loads((data_dir / "status.json").read_text("utf-8"))
    except (OSError, ValueError):
        facts = {"status": {}, "link_up": None, "note": "no status.json: the agent has not run here yet"}
    path = data_dir / "outbox.sqlite"
    if path.exists():
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            depth, oldest = conn.execute("SELECT count(*), min(rated_at) FROM ratings").fetchone()
            last = conn.execute("SELECT max(at) FROM outcomes").fetchone()[0]
        finally:
            conn.close()
        facts.update(outbox_depth=depth, oldest_unsent_at=oldest, last_outcome_at=last)
    return facts
