"""The tests' PostgreSQL clusters: :mod:`hcp.sim.postgres` (shared with the benchmarks and the demo)."""

from hcp.sim.postgres import BIN, SUPERUSER, Cluster, available, free_port, make_root, wait_for

__all__ = ["BIN", "SUPERUSER", "Cluster", "available", "free_port", "make_root", "wait_for"]
