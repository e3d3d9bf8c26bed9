#!/usr/bin/env bash
# Install the system packages hcp needs, only those that are missing.
# Works as root or through sudo on Debian 12 and Raspberry Pi OS Bookworm.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# chromium: the phone rating page's browser tests (Playwright drives Debian's build; never `playwright install`).
# libatomic1: Playwright's bundled node driver links it; a minimal Debian (debootstrap minbase, a slim
# container) lacks it and every browser test then fails with "libatomic.so.1: cannot open shared object".
# postgresql: Bookworm's 15, the collector's optional store; tests run initdb/pg_ctl from /usr/lib/postgresql/15/bin.
# e2fsprogs: chattr, which the read-only tests use (file modes do not stop root).
for pkg in mosquitto mosquitto-clients fonts-noto-cjk fontconfig espeak-ng python3-venv chromium libatomic1 postgresql e2fsprogs; do
  have_pkg "$pkg" || need+=("$pkg")
done
# npm (and Node.js with it) unless a Node.js distribution with its own npm is installed (NodeSource's nodejs
# conflicts with Debian's npm package).
command -v npm >/dev/null 2>&1 || need+=(npm)
# systemd-analyze (tests verify the units with it): in the systemd package.
command -v systemd-analyze >/dev/null 2>&1 || have_pkg systemd || need+=(systemd)
# A Python 3.11 interpreter: Bookworm's python3 is 3.11.
if ! command -v python3.11 >/dev/null 2>&1; then
  have_pkg python3.11 || need+=(python3.11 python3.11-venv)
fi
[ ${#need[@]} -eq 0 ] && exit 0

echo "installing system packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
# The Debian package starts a system broker on port 1883; hcp's tests and demo
# start their own on free ports and do not need it.
# The postgresql package likewise starts a system cluster on port 5432; the tests start their own.
