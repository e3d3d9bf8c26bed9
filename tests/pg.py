"""The tests' PostgreSQL clusters: :mod:`hcp.sim.postgres` (shared with the benchmarks and the demo)."""

from hcp.sim.postgres import BIN, SUPERUSER, Cluster, available, free_port, make_root, wait_for

__all__ = ["BIN", "SUPERUSER", "Cluster", "available", "copy_rows", "free_port", "make_root", "wait_for"]


def copy_rows(sqlite, pg, tables) -> None:
    """Every row of ``tables`` from an sqlite3 connection into a migrated PostgreSQL one, ids kept; each
    ``id`` identity sequence goes on after the copied ids, as ``hcp migrate-store`` leaves them."""
    for table in tables:
        cursor = sqlite.execute(f"SELECT * FROM {table}")
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        if rows:
            with pg.cursor() as out:
                out.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                f"({', '.join(['%s'] * len(columns))})", rows)
            if "id" in columns:
                pg.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    pg.commit()
