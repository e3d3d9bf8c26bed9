"""scripts/install-deps.sh installs what `make test` needs on a minimal Debian 12.

The check that counts is manual: `debootstrap --variant=minbase bookworm` plus
python3, make and git, then `make test` inside it (docs/install.md). This test
keeps the part that broke there from coming back: every shared library of
Playwright's bundled node driver comes from a package the script installs or
from one a minimal Debian already has.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install-deps.sh"
#: Libraries' packages in `debootstrap --variant=minbase bookworm` (apt needs them), checked in such a root.
MINBASE = {"libc6", "libgcc-s1", "libstdc++6"}


def _script_packages() -> set[str]:
    found = re.search(r"^for pkg in (.+); do$", SCRIPT.read_text("utf-8"), re.MULTILINE)
    assert found, "install-deps.sh: the package loop is gone"
    return set(found.group(1).split())


def _owner(library: str) -> str:
    owned = subprocess.run(["dpkg", "-S", library], capture_output=True, text=True)
    if owned.returncode != 0:  # /lib is a symlink to /usr/lib on bookworm: dpkg may know either path
        other = library.removeprefix("/usr") if library.startswith("/usr/") else "/usr" + library
        owned = subprocess.run(["dpkg", "-S", other], capture_output=True, text=True, check=True)
    return owned.stdout.split(":")[0].strip()


def test_the_playwright_driver_finds_its_libraries_on_a_minimal_debian() -> None:
    import playwright  # a test dependency (setup.py): always there

    assert shutil.which("dpkg"), "hcp is built for Debian 12 and Raspberry Pi OS Bookworm: dpkg is missing"
    node = Path(playwright.__file__).parent / "driver" / "node"
    linked = subprocess.run(["ldd", str(node)], capture_output=True, text=True, check=True).stdout
    libraries = re.findall(r"=> (/\S+)", linked)
    assert libraries, linked
    wanted = {library: _owner(library) for library in libraries}
    missing = {lib: pkg for lib, pkg in wanted.items() if pkg not in _script_packages() | MINBASE}
    assert not missing, f"install-deps.sh does not install {missing}"
