"""The agent's resident memory and idle CPU, with the simulated panel and with the touchscreen UI loaded.

Starts a real `hcp agent` process against a private Mosquitto, lets it settle,
then reads VmRSS and the CPU time it used over an idle period from /proc.

    python bench/agent_memory.py [--idle 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, rss_kib

from hcp.sim.broker import Broker


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(broker: Broker, folder: Path, frontend: str, idle_s: float) -> tuple[int, float]:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    proc = subprocess.Popen([sys.executable, "-m", "hcp.cli", "--log-level", "WARNING", "agent",
                             "--device-id", f"mem-{frontend}", "--hall", "h1", "--window", "w1",
                             "--broker", f"127.0.0.1:{broker.port}", "--data-dir", str(folder / frontend),
                             "--frontend", frontend], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    try:
        time.sleep(3)  # start-up: imports, first screen, connect
        if proc.poll() is not None:
            raise RuntimeError(f"agent with --frontend {frontend} exited with {proc.returncode}")
        before = cpu_seconds(proc.pid)
        time.sleep(idle_s)
        idle_cpu = (cpu_seconds(proc.pid) - before) / idle_s
        return rss_kib(proc.pid), idle_cpu
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> dict[str, tuple[int, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle to measure CPU over")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp) / "broker") as broker:
        for frontend in ("sim", "touch"):
            results[frontend] = measure(broker, Path(tmp), frontend, args.idle)
    print(f"# agent memory and idle CPU; {machine()}")
    for frontend, (rss, cpu) in results.items():
        print(f"agent --frontend {frontend:<6} RSS {rss / 1024:6.1f} MiB   idle CPU {cpu * 100:5.2f} % of one core")
    return results


if __name__ == "__main__":
    main()
