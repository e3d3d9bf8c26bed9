"""Issue 13: only the storage layer (collector/store/) speaks SQL; these modules call the Store by name.

The modules moved so far are listed; the next moves add theirs until the list is every module outside
collector/store/.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MOVED = ["collector/stats.py", "collector/fleet.py", "collector/linking.py", "collector/channels.py",
         "collector/channel_services.py", "collector/web.py", "collector/opening.py", "collector/service.py",
         "hcp/cli/central.py"]
#: An SQL statement in a string (the project writes SQL keywords in capitals).
_SQL = re.compile(r"SELECT\s.*\bFROM\b|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|"
                  r"CREATE\s+(TEMP\s+)?(TABLE|INDEX|UNIQUE|VIEW|TRIGGER)\s|DROP\s+(TABLE|VIEW|TRIGGER)\s|"
                  r"WITH\s+\w+\s+AS\s*\(|PRAGMA\s|SAVEPOINT\s", re.S)
_DRIVERS = {"sqlite3", "sqlite_utils", "psycopg"}


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"imports {n}" for n in names if n.split(".")[0] in _DRIVERS]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.search(node.value):
            found.append(f"SQL at line {node.lineno}: {node.value.strip()[:40]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany", "_conn", "_db"):
            found.append(f".{node.attr} at line {node.lineno}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and _names_store(node.value):
            found.append(f"store.{node.attr} (private) at line {node.lineno}")
    return found


def _names_store(node: ast.expr) -> bool:
    """``store`` or ``<something>.store``."""
    return (isinstance(node, ast.Name) and node.id == "store") or \
        (isinstance(node, ast.Attribute) and node.attr == "store")


@pytest.mark.parametrize("module", MOVED)
def test_a_moved_module_has_no_sql_no_driver_and_no_reach_into_the_store(module):
    assert _problems(ROOT / module) == []
