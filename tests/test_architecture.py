"""The boundaries STYLE.md sets, checked so they stay: one MQTT module, hardware loaded only when used."""

from __future__ import annotations

import ast
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
