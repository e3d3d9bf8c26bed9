"""The boundaries STYLE.md sets, checked so they stay: one MQTT module, one SQL layer, hardware loaded when used."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = ["hcp", "agent", "collector", "config", "device", "sim", "sync", "ui"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_sync_client_imports_paho():
    importers = sorted(str(path.relative_to(ROOT)) for package in PACKAGES
                       for path in (ROOT / package).rglob("*.py")
                       if any(name.split(".")[0] == "paho" for name in imported_modules(path)))
    assert importers == ["sync/mqtt.py"]


def test_the_agent_and_collector_load_no_hardware_library_they_do_not_use():
    code = ("import sys; import hcp.cli, hcp.agent.runtime, hcp.agent.frontends, hcp.collector.service, "
            "hcp.config.schema, hcp.device.sim_panel; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pygame', 'gpiozero', 'serial', 'qrcode'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


#: What marks SQL in a module: a statement in a string, the DB-API's calls, a database driver, the Store's connection.
_SQL_WORD = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA|SAVEPOINT|ROLLBACK)\b")
_SQL_ATTRIBUTES = {"execute", "executemany", "executescript", "_conn", "_db"}
_DRIVERS = {"sqlite3", "sqlite_utils", "psycopg"}

#: Modules outside the storage layer that still speak SQL, and how (issue 13): none since the reads, channels
#: and boundary errors moved into collector/store/; the test keeps it so.
NOT_YET_IN_THE_STORAGE_LAYER: dict[str, set[str]] = {}


def sql_marks(path: Path) -> set[str]:
    """How a module speaks SQL: 'sql' (a statement), 'import' (a driver), or the attribute it uses."""
    marks: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(name.split(".")[0] in _DRIVERS for name in names):
                marks.add("import")
        elif isinstance(node, ast.Attribute) and node.attr in _SQL_ATTRIBUTES:
            marks.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL_WORD.search(node.value):
            marks.add("sql")
    return marks


def test_only_the_storage_layer_speaks_sql():
    layer = ROOT / "collector" / "store"
    modules = [path for package in ("collector", "hcp/cli") for path in sorted((ROOT / package).rglob("*.py"))
               if layer not in path.parents]
    speaking = {str(path.relative_to(ROOT)): marks for path in modules if (marks := sql_marks(path))}
    assert speaking == NOT_YET_IN_THE_STORAGE_LAYER


def _reaches_into_a_store(node: ast.AST) -> bool:
    """``store._x`` or ``<anything>.store._x``: a private name of the Store used from outside."""
    if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
        return False
    owner = node.value
    return (isinstance(owner, ast.Name) and owner.id == "store") or \
        (isinstance(owner, ast.Attribute) and owner.attr == "store")


def test_nothing_outside_the_storage_layer_uses_the_stores_private_names():
    layer = ROOT / "collector" / "store"
    reaching = sorted(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}"
                      for package in ("collector", "hcp/cli") for path in sorted((ROOT / package).rglob("*.py"))
                      if layer not in path.parents
                      for node in ast.walk(ast.parse(path.read_text("utf-8"))) if _reaches_into_a_store(node))
    assert reaching == []
