"""A fork server for ``hcp agent`` processes, so a fault run can kill -9 an agent hundreds of times.

Starting Python and importing hcp takes most of a second; a kill -9 scenario
of 10,000 cycles cannot pay that each time. This process imports everything
once, then for each request line ``<config>\\t<stdin fifo>\\t<stdout fifo>\\t<log>``
forks a child that is a real ``hcp agent`` (``hcp.cli.main``) with the
simulated panel on the two FIFOs, and answers the child's pid. The server
itself never starts a thread, so forking it is safe. Children are reaped by
the kernel (SIGCHLD ignored); the test kills them by pid.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

# Imported here, once, so every forked agent starts warm.
import hcp.agent.runtime
import hcp.device.sim_panel
import hcp.sync.mqtt  # noqa: F401
from hcp.cli import main as hcp_main


def _child(config: str, stdin_fifo: str, stdout_fifo: str, log: str) -> None:
    code = 70
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(os.open(stdin_fifo, os.O_RDONLY), 0)
        os.dup2(os.open(stdout_fifo, os.O_WRONLY), 1)
        os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), 2)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - they live as long as the process
        sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
        code = hcp_main(["--log-level", "INFO", "agent", "--config", config])
    except BaseException:  # the child must never return into the server's loop
        traceback.print_exc()
    finally:
        os._exit(code)


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 4:
            print("error: expected 4 tab-separated fields", flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            _child(*parts)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
