"""Shared pieces of the channel tests: a store with cases, a receipt key, a local HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import CST, Intake
from hcp.protocol import CaseRecord

KEY = b"collector-key-for-tests-0123456789abcdef"
RECEIPT_KEY = b"receipt-key-for-tests-0123456789"
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=CST)


def open_store(tmp_path: Path, preset: str = "ulanqab", *, database: Path | str | None = None, **overrides) -> Store:
    """A store in ``tmp_path`` (or ``database``: a file or URL) with its key file in ``tmp_path``, as
    ``hcp collector`` leaves one for the CLI."""
    key = tmp_path / "collector.key"
    if not key.exists():
        key.write_text(KEY.hex())
        key.chmod(0o600)
    return Store.open(database or tmp_path / "collector.sqlite", load_profile(preset, overrides=overrides), KEY,
                      check_same_thread=False)


def case(case_id: str, *, hall: str = "hall01", window: str = "w03", item: str = "个体工商户设立登记",
         intake: Intake = Intake.OK, applicant: str | None = "A-1", completed: datetime | None = None,
         batch: str | None = None) -> CaseRecord:
    return CaseRecord(case_id=case_id, hall_id=hall, window_id=window, item_code="001", item_name=item,
                      clerk_id="E1024", intake=intake, batch_id=batch, applicant_id=applicant,
                      completed_at=completed or NOW - timedelta(hours=1))


class Receiver:
    """A local HTTP server; ``answer(path, body, headers)`` returns (status, body) or sleeps to time out."""

    def __init__(self, answer: Callable[[str, dict, dict], tuple[int, dict]]) -> None:
        self.requests: list[tuple[str, dict, dict]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body, headers = json.loads(raw), {k.lower(): v for k, v in self.headers.items()}
                headers["_raw"] = raw
                with receiver.lock:
                    receiver.requests.append((self.path, body, headers))
                status, answer_body = answer(self.path, body, headers)
                data = json.dumps(answer_body, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout case)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def window_rating(store: Store, case_id: str, score: int = 5, *, at: datetime = NOW) -> str:
    """Rate ``case_id`` at the window terminal hall01-w03 (registering it), through the MQTT path's store call."""
    import uuid

    from hcp.protocol import Rating, RatingMessage

    if store.device("hall01-w03") is None:
        store.register_device("hall01-w03", "hall01", "w03")
    rating = Rating(rating_id=str(uuid.uuid4()), seq=1, kind="service", case_ids=[case_id], score=score,
                    rated_at=at, clock_synced=True)
    [answer] = store.ingest("hall01-w03", RatingMessage(v=1, device_id="hall01-w03", ratings=[rating]), at)
    return answer.outcome
