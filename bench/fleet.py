"""A fleet: how many terminal connections one broker and one collector hold, and what it costs them.

A private Mosquitto and a real `hcp collector` process. N terminals connect as
lightweight raw MQTT clients (CONNECT, wait for CONNACK, publish the retained
online status the way a terminal does, then hold the connection) from a few
processes; the file-descriptor limit is raised to the hard limit. Reported:
connections accepted, the statuses the collector recorded, and the resident
memory and CPU of broker and collector while the fleet is connected.

    python bench/fleet.py [--terminals 5000] [--procs 4] [--hold 10]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, rss_kib

from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.protocol import StatusMessage, Topics, encode
from hcp.sim.broker import Broker


def device(n: int) -> str:
    return f"fleet-{n:05d}"


def _remaining(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def connect_packet(client_id: str, keepalive: int = 0) -> bytes:
    """MQTT 3.1.1 CONNECT, clean session; keepalive 0 so idle clients are never timed out."""
    body = _string("MQTT") + bytes([4, 0x02]) + keepalive.to_bytes(2, "big") + _string(client_id)
    return b"\x10" + _remaining(len(body)) + body


def publish_packet(topic: str, payload: bytes, retain: bool = True) -> bytes:
    body = _string(topic) + payload  # QoS 0: no packet id
    return bytes([0x30 | (1 if retain else 0)]) + _remaining(len(body)) + body


def hold(port: int, first: int, count: int, hold_until: float, out: mp.Queue) -> None:
    topics, socks, failed = Topics(), [], 0
    for n in range(first, first + count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(connect_packet(f"hcp-agent-{device(n)}"))
            if sock.recv(4)[:1] != b"\x20":
                raise OSError("no CONNACK")
            status = StatusMessage(v=1, device_id=device(n), state="online", version="bench")
            sock.sendall(publish_packet(topics.status(device(n)), encode(status)))
            socks.append(sock)
        except OSError:
            failed += 1
    out.put(("connected", len(socks), failed))
    time.sleep(max(0.0, hold_until - time.time()))
    alive = 0
    for sock in socks:  # still open? a closed connection reads EOF without blocking
        sock.setblocking(False)
        try:
            alive += sock.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        sock.close()
    out.put(("alive", alive, 0))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terminals", type=int, default=5000)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the whole fleet stays connected")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by mosquitto and the clients
    with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp) / "broker") as broker:
        folder = Path(tmp) / "collector"
        folder.mkdir()
        with Store.open(folder / "collector.sqlite", load_profile("henan"),
                        load_or_create_key(folder / "collector.key")) as store:
            for n in range(args.terminals):
                store.register_device(device(n), "h1", f"w{n}")
        collector = subprocess.Popen([sys.executable, "-m", "hcp.cli", "--log-level", "WARNING", "collector",
                                      "--broker", f"127.0.0.1:{broker.port}", "--data-dir", str(folder),
                                      "--policy", "henan"])
        time.sleep(2)
        base_rss = rss_kib(collector.pid)
        out: mp.Queue = mp.Queue()
        per = -(-args.terminals // args.procs)
        start = time.time()
        ramp = args.terminals / 500 + 10
        procs = [mp.Process(target=hold, args=(broker.port, first, min(per, args.terminals - first),
                                               start + ramp + args.hold, out))
                 for first in range(0, args.terminals, per)]
        for proc in procs:
            proc.start()
        connected = [out.get(timeout=600) for _ in procs]
        ramp_s = time.time() - start
        time.sleep(1)
        broker_pid = broker._proc.pid if broker._proc else 0  # the bench reads its /proc
        cpu0, t0 = cpu_seconds(collector.pid), time.time()
        idle_cpu0 = cpu_seconds(broker_pid)
        alive = [out.get(timeout=600) for _ in procs]
        cpu = (cpu_seconds(collector.pid) - cpu0) / (time.time() - t0)
        broker_cpu = (cpu_seconds(broker_pid) - idle_cpu0) / (time.time() - t0)
        rss, broker_rss = rss_kib(collector.pid), rss_kib(broker_pid)
        for proc in procs:
            proc.join(60)
        collector.terminate()
        collector.wait(30)
        conn = sqlite3.connect(folder / "collector.sqlite")
        statuses = conn.execute("SELECT count(*) FROM device_status WHERE state = 'online'").fetchone()[0]
        conn.close()
    ok = sum(c for _, c, _ in connected)
    failed = sum(f for _, _, f in connected)
    held = sum(a for _, a, _ in alive)
    print(f"# fleet; {machine()}; fd limit {hard}")
    print(f"{args.terminals} terminals: {ok} connected ({failed} failed) in {ramp_s:.1f} s, {held} still connected "
          f"after holding; collector recorded {statuses} online statuses")
    print(f"collector RSS {base_rss / 1024:.0f} → {rss / 1024:.0f} MiB, CPU {cpu * 100:.1f} % while holding; "
          f"mosquitto RSS {broker_rss / 1024:.0f} MiB, CPU {broker_cpu * 100:.1f} %")
    return {"connected": ok, "held": held, "statuses": statuses}


if __name__ == "__main__":
    main()
