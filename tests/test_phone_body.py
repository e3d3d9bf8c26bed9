"""The phone page's memory under large requests: the real server in its own process, its peak RSS measured.

Three clients each push a large body at once, with a Content-Length and
chunked; the page must refuse them (413) without ever holding them, so the
process's peak resident size (VmHWM) hardly moves.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcp.collector.web import PageSettings, RatingPage, ServerLimits, WebServer, create_app
from hcp.config.schema import CollectorConfig, load_config
from hcp.exc import ConfigError
from tests.channel_support import NOW, RECEIPT_KEY, open_store

CONFIG = Path(__file__).parent.parent / "config"
BODY_MIB = 48
CLIENTS = 3
SERVE = """
import sys
from pathlib import Path
from hcp.collector.web import PageSettings, RatingPage, WebServer, create_app
from tests.channel_support import NOW, RECEIPT_KEY, case, open_store
store = open_store(Path(sys.argv[1]))
store.add_cases([case("C1")], NOW)
with WebServer(create_app(RatingPage(store, PageSettings(RECEIPT_KEY), clock=lambda: NOW)), "127.0.0.1", 0) as web:
    print(web.port, flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[subprocess.Popen, int]]:
    root = Path(__file__).parent.parent
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(tmp_path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=root)
    try:
        yield process, int(process.stdout.readline())
    finally:
        process.stdin.close()
        process.wait(10)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def push(port: int, chunked: bool, answers: list[bytes], kib: int = BODY_MIB * 1024, piece_kib: int = 1024) -> None:
    """POST a body of ``kib`` KiB, as fast as the server takes it; record the status line it answered."""
    size = kib * 1024
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (f"POST /r/C1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"{framing}\r\n\r\n").encode()
    piece = b"a" * (piece_kib * 1024)
    if chunked:
        piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(head)
            for _ in range(size // (piece_kib * 1024)):
                sock.sendall(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # refused early: the server closed the connection
        try:
            answers.append(sock.recv(200).split(b"\r\n")[0])
        except OSError:
            answers.append(b"reset")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_bodies_are_refused_without_being_held(server, chunked):
    process, port = server
    push(port, chunked=False, answers=[], kib=1024)  # warm-up: whatever the first request allocates
    before = peak_rss_kib(process.pid)
    answers: list[bytes] = []
    threads = [threading.Thread(target=push, args=(port, chunked, answers)) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    grown_mib = (peak_rss_kib(process.pid) - before) / 1024
    assert grown_mib < 16, f"peak RSS grew by {grown_mib:.0f} MiB for {CLIENTS} x {BODY_MIB} MiB bodies"
    # Refused mid-send, a client may see the connection reset before it reads the 413.
    assert len(answers) == CLIENTS and set(answers) <= {b"HTTP/1.1 413 Request Entity Too Large", b"reset"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_just_over_the_cap_is_answered_413(server, chunked):
    _process, port = server
    answers: list[bytes] = []
    push(port, chunked, answers, kib=32, piece_kib=32)  # over the 16 KiB cap, all sent before the answer
    assert answers == [b"HTTP/1.1 413 Request Entity Too Large"]


def test_a_header_block_that_never_ends_is_refused(server):
    """uvicorn runs h11 with web.max_header_bytes: an unfinished header block is not buffered past it."""
    _process, port = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for n in range(64):
                sock.sendall(f"X-Filler-{n}: ".encode() + b"a" * 16 * 1024 + b"\r\n")
        except OSError:
            pass
        assert sock.recv(200).startswith(b"HTTP/1.1 400")


def test_beyond_max_connections_the_page_answers_503(tmp_path):
    store = open_store(tmp_path)
    app = create_app(RatingPage(store, PageSettings(RECEIPT_KEY), clock=lambda: NOW))
    with WebServer(app, "127.0.0.1", 0, limits=ServerLimits(max_connections=2)) as web:
        idle = [socket.create_connection(("127.0.0.1", web.port), timeout=10) for _ in range(2)]
        try:
            time.sleep(0.2)  # both accepted: they hold the two places
            with socket.create_connection(("127.0.0.1", web.port), timeout=10) as third:
                third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert third.recv(200).startswith(b"HTTP/1.1 503")
        finally:
            for sock in idle:
                sock.close()
    store.close()


@pytest.mark.parametrize(("line", "key"), [
    ("max_body_bytes = 10", "web.max_body_bytes"),
    ("max_connections = 0", "web.max_connections"),
    ("max_header_bytes = 100", "web.max_header_bytes"),
])
def test_server_limit_mistakes_name_the_key(tmp_path, line, key):
    path = tmp_path / "collector.toml"
    path.write_text((CONFIG / "collector.example.toml").read_text() + f'\n[web]\nlisten = "0.0.0.0:8080"\n{line}\n')
    with pytest.raises(ConfigError) as err:
        load_config(CollectorConfig, path)
    assert f"key {key}" in str(err.value)
