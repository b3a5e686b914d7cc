#!/usr/bin/env bash
# Install everything the test suite needs, then run it: ruff (lint + format check) and mypy, pytest
# (with any args given: ./scripts/test.sh [pytest args]), the dashboard modules' node tests.
# Each gate prints its result as it finishes, and again in a summary at the end.
# Exits non-zero when any of them fails.
# System packages (Debian): Prometheus + promtool, Alertmanager + amtool, Chromium + ChromeDriver,
# wrk, docker-compose (compose-file validation only), Node.js (node --test, for the dashboard's
# modules), shellcheck (the scripts' own test), Apache + mod_wsgi (a server recipe's test), and python3-venv when `python3 -m venv` lacks it. Python: a .venv with the package and
# its test extra. Every server the tests use is
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
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v shellcheck >/dev/null || need+=(shellcheck)
[ -e /usr/lib/apache2/modules/mod_wsgi.so ] || need+=(apache2 libapache2-mod-wsgi-py3)
. scripts/_venv.sh
. scripts/_gates.sh
if [ ${#need[@]} -gt 0 ]; then
  echo "The integration tests run real servers and a real browser on 127.0.0.1 (Prometheus, Alertmanager,"
  echo "Chromium, wrk, Node.js for the dashboard's modules): installing the missing ones, about 300 MB once."
  apt_install "${need[@]}" || { echo "install these Debian packages: ${need[*]}" >&2; exit 1; }
fi

ensure_venv
pip_install "otel_monitor (editable) and its test extra (pytest, playwright, gunicorn, ruff, mypy, ...)" -e ".[test]"
# axe-core (the accessibility checks injected into the browser tests' Chromium), pinned in
# tests/js/package-lock.json, from the npm registry: about 3 MB once.
if [ ! -f tests/js/node_modules/axe-core/axe.min.js ] || [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
  echo "npm: installing axe-core for the dashboard's accessibility tests (tests/js/package-lock.json) ..."
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
fi

# Lint, format and types (configured in pyproject.toml) before the tests. A failure shows its
# findings here and fails the run at the end, but pytest still runs: one run shows everything.
check "lint, ruff check ." '^(Found [0-9]+ error|All checks passed)' .venv/bin/ruff check --output-format concise .
check "format, ruff format --check ." 'files? (would be reformatted|already formatted)' .venv/bin/ruff format --check .
[ -d .mypy_cache ] || echo "(mypy's first run fills its cache: about a minute; later runs take seconds)"
check "types, mypy --strict (otel_monitor/)" '^(Success:|Found [0-9]+ error)' .venv/bin/mypy

echo "tests, pytest ... (real servers and a headless browser: several minutes)"
color=no
[ -t 1 ] && color=yes
pytest_log=$(mktemp)
set +e
# Two worker processes, each taking whole files (--dist loadfile: a file's fixtures and order stay
# as written): most tests wait on real servers, so two cores run the suite in about half the time.
# PYTEST_WORKERS=0 runs it in one process; pytest args given later win (e.g. ./scripts/test.sh -n 0).
.venv/bin/python -u -m pytest -ra --color="$color" -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@" 2>&1 | tee "$pytest_log"  # -u: live through the pipe
pytest_rc=${PIPESTATUS[0]}
set -e
# pytest's last line, e.g. "761 passed, 2 skipped in 512.30s (0:08:32)"
pytest_line=$(sed 's/\x1b\[[0-9;]*m//g' "$pytest_log" | grep -E '^=+ .* in [0-9.]+s' | tail -n1 | sed -E 's/^=+ //; s/ =+$//' || true)
rm -f "$pytest_log"
if [ "$pytest_rc" -eq 0 ]; then
  gate_result "tests, pytest" ok "$pytest_line"
elif [ "$pytest_rc" -eq 5 ]; then
  gate_result "tests, pytest" FAILED "no tests collected (treated as a failure)"
else
  gate_result "tests, pytest" FAILED "${pytest_line:-exit $pytest_rc}"
fi

# The dashboard's pure ES modules (otel_monitor/analytics/static/js) have node:test specifications:
# their summary, and the failures' details when one fails (bounded: a spec stuck in a loop fails).
echo "dashboard modules, node --test tests/js ..."
node_log=$(mktemp)
node_rc=0
timeout 300 node --test --test-reporter=spec --test-reporter-destination="$node_log" tests/js/*.test.mjs || node_rc=$?
if [ "$node_rc" -ne 0 ]; then
  # Node 20's spec report ends with the failures; an older one, or a crash, is shown whole.
  if grep -q '^✖ failing tests:' "$node_log"; then sed -n '/^✖ failing tests:/,$p' "$node_log"; else cat "$node_log"; fi
fi
summary=$(grep -E '^ℹ (tests|pass|fail) ' "$node_log" | sed 's/^ℹ //' | paste -sd, - | sed 's/,/, /g' || true)
rm -f "$node_log"
if [ "$node_rc" -eq 0 ]; then
  gate_result "dashboard modules, node --test tests/js" ok "${summary:-no summary}"
else
  gate_result "dashboard modules, node --test tests/js" FAILED "${summary:-exit $node_rc (see above)}"
fi

print_summary
exit "$GATE_RC"
