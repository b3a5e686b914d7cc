#!/usr/bin/env bash
# Install everything the test suite needs, then run it. Usage: ./scripts/test.sh [pytest args]
# System packages (Debian): Prometheus + promtool, Alertmanager + amtool, Chromium + ChromeDriver,
# wrk, docker-compose (compose-file validation only), and python3-venv when `python3 -m venv`
# lacks it. Python: a .venv with the package and its test extra. Every server the tests use is
# started by the tests themselves, on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v wrk >/dev/null || need+=(wrk)
command -v docker-compose >/dev/null || need+=(docker-compose)
. scripts/_venv.sh
if [ ${#need[@]} -gt 0 ]; then
  apt_install "${need[@]}" || { echo "install these Debian packages: ${need[*]}" >&2; exit 1; }
fi

ensure_venv
pip_install -e ".[test]"

set +e
.venv/bin/python -m pytest -ra "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure"
  rc=1
fi
exit "$rc"
