"""The test harness's PostgreSQL cluster (tests/pg.py): it starts, and leaves nothing behind, even on failure."""

from __future__ import annotations

import socket
import subprocess
from unittest import mock

import psycopg
import pytest

from tests.pg import Cluster, make_root, wait_for


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_cluster_runs_durably_on_loopback_and_close_removes_everything():
    with Cluster.create() as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            settings = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name IN "
                                         "('fsync', 'listen_addresses', 'synchronous_commit')").fetchall())
        assert settings == {"fsync": "on", "listen_addresses": "127.0.0.1", "synchronous_commit": "on"}
        port, root = cluster.port, cluster.root
    assert not _listening(port)
    assert not root.exists()
    cluster.close()  # safe twice


def test_a_cluster_that_fails_to_start_leaves_no_directory():
    root = make_root()
    with mock.patch.object(Cluster, "start", side_effect=RuntimeError("injected")), \
            pytest.raises(RuntimeError, match="injected"):
        Cluster.create(root)
    assert not root.exists()


def test_a_server_left_running_by_a_failed_stop_is_killed():
    cluster = Cluster.create()
    real_run = cluster._run

    def failing_stop(program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if program == "pg_ctl" and args[0] == "stop":
            return subprocess.CompletedProcess([program, *args], 1, "", "injected")
        return real_run(program, *args, check=check)

    with mock.patch.object(cluster, "_run", side_effect=failing_stop):
        cluster.close()
    wait_for(lambda: not _listening(cluster.port))
    assert not cluster.root.exists()
