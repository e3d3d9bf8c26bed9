"""The PostgreSQL twin of :mod:`hcp.collector.store.schema_check`: the schema's objects against the migrations'.

The expected objects are built by running the migrations in a scratch schema
inside a transaction that is always rolled back, so nothing is left behind;
it needs the right to create a schema in the database (the owner role has
it; the collector's role does not, and is told so). Compared, by name and
definition read from the catalog: tables with their columns (type, null,
default, identity), constraints, indexes, views, rules, triggers (with
whether they are enabled: a disabled append-only trigger is tampering) and
functions. Schema names are stripped from definitions, so ``public`` and
the scratch schema compare equal.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import psycopg

from hcp.collector.store.pg_schema import MIGRATIONS

if TYPE_CHECKING:
    from hcp.collector.store.engine_pg import PostgresEngine

_SCRATCH = "hcp_expected_schema"
_WHITESPACE = re.compile(r"\s+")

_QUERIES = {
    "column": """SELECT c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod) || ' null=' ||
                        (NOT a.attnotnull)::text || ' identity=' || a.attidentity::text || ' default=' ||
                        coalesce(pg_get_expr(d.adbin, d.adrelid), '')
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped""",
    "table": """SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')""",
    "constraint": """SELECT c.relname || '.' || k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k
                     JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = %(schema)s""",
    "index": """SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = %(schema)s""",
    "view": """SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = %(schema)s AND c.relkind IN ('v', 'm')""",
    "rule": """SELECT r.tablename || '.' || r.rulename, r.definition FROM pg_rules r WHERE r.schemaname = %(schema)s""",
    "trigger": """SELECT c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
                  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = %(schema)s AND NOT t.tgisinternal""",
    "function": """SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                          pg_get_functiondef(p.oid)
                   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(schema)s""",
    "policy": """SELECT p.tablename || '.' || p.policyname, p.cmd || ' ' || coalesce(p.qual, '') || ' ' ||
                        coalesce(p.with_check, '') FROM pg_policies p WHERE p.schemaname = %(schema)s""",
}


def schema_objects(conn: psycopg.Connection[Any], schema: str) -> dict[tuple[str, str], str]:
    """(kind, name) -> definition, schema names stripped and whitespace collapsed, of every object in ``schema``."""
    qualified = re.compile(rf'\b(?:"?{re.escape(schema)}"?)\.')
    found: dict[tuple[str, str], str] = {}
    for kind, sql in _QUERIES.items():
        for name, definition in conn.execute(sql, {"schema": schema}):
            found[kind, name] = _WHITESPACE.sub(" ", qualified.sub("", definition or "")).strip()
    return found


def expected_objects(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], str]:
    """The objects the migrations create, built in a scratch schema and rolled back."""
    with conn.transaction(force_rollback=True):
        conn.execute(f"CREATE SCHEMA {_SCRATCH}")
        conn.execute(f"SET LOCAL search_path = {_SCRATCH}")
        conn.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
        for step in MIGRATIONS:
            for statement in step.statements:
                conn.execute(statement)
        return schema_objects(conn, _SCRATCH)


def schema_problems(engine: PostgresEngine) -> list[tuple[str, str]]:
    """(where, what) for every schema object added, missing or defined otherwise than the migrations do."""
    conn = engine.connection
    try:
        expected = expected_objects(conn)
    except psycopg.errors.InsufficientPrivilege:
        return [("schema", "not compared with the migrations: this role may not create a scratch schema "
                           "(run hcp verify as the database's owner role)")]
    found = schema_objects(conn, "public")
    problems = []
    for (kind, name), definition in sorted(found.items()):
        if (kind, name) not in expected:
            problems.append((f"{kind} {name}", f"not created by the migrations (added outside the collector): "
                                               f"{definition}"))
        elif expected[kind, name] != definition:
            problems.append((f"{kind} {name}", f"defined otherwise than the migrations create it: {definition}"))
    problems += [(f"{kind} {name}", "missing (dropped outside the collector)")
                 for kind, name in sorted(expected) if (kind, name) not in found]
    return problems
