#!/usr/bin/env bash
# Install everything the test suite needs, then run it: ruff (lint + format check) and mypy, pytest
# (with any args given: ./scripts/test.sh [pytest args]), the dashboard modules' node tests.
# Exits non-zero when any of them fails.
# System packages (Debian): Prometheus + promtool, Alertmanager + amtool, Chromium + ChromeDriver,
# wrk, docker-compose (compose-file validation only), Node.js (node --test, for the dashboard's
# modules), and python3-venv when `python3 -m venv` lacks it. Python: a .venv with the package and
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
. scripts/_venv.sh
if [ ${#need[@]} -gt 0 ]; then
  apt_install "${need[@]}" || { echo "install these Debian packages: ${need[*]}" >&2; exit 1; }
fi

ensure_venv
pip_install -e ".[test]"

# Lint, format and types (configured in pyproject.toml) before the tests. A failure shows its
# findings here and fails the run at the end, but pytest still runs: one run shows everything.
rc=0
summaries=()
check() {  # check LABEL SUMMARY_REGEX COMMAND...: one summary line per tool, findings on failure
  local label=$1 pattern=$2 log line
  shift 2
  log=$(mktemp)
  if "$@" >"$log" 2>&1; then
    line=$(grep -E "$pattern" "$log" | tail -n1 || true)
    summaries+=("$label: ok${line:+, $line}")
  else
    cat "$log"
    line=$(grep -E "$pattern" "$log" | tail -n1 || true)
    summaries+=("$label: FAILED, ${line:-$(tail -n1 "$log")} (findings above the tests)")
    rc=1
  fi
  rm -f "$log"
}
check "lint, ruff check ." '^(Found [0-9]+ error|All checks passed)' .venv/bin/ruff check --output-format concise .
check "format, ruff format --check ." 'files? (would be reformatted|already formatted)' .venv/bin/ruff format --check .
check "types, mypy (otel_monitor/)" '^(Success:|Found [0-9]+ error)' .venv/bin/mypy

set +e
.venv/bin/python -m pytest -ra "$@"
pytest_rc=$?
set -e
[ "$pytest_rc" -eq 0 ] || rc=$pytest_rc
if [ "$pytest_rc" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure"
  rc=1
fi

# The dashboard's pure ES modules (otel_monitor/analytics/static/js) have node:test specifications:
# their summary, and the failures' details when one fails (bounded: a spec stuck in a loop fails).
node_log=$(mktemp)
node_rc=0
timeout 300 node --test --test-reporter=spec --test-reporter-destination="$node_log" tests/js/*.test.mjs || node_rc=$?
if [ "$node_rc" -ne 0 ]; then
  # Node 20's spec report ends with the failures; an older one, or a crash, is shown whole.
  if grep -q '^✖ failing tests:' "$node_log"; then sed -n '/^✖ failing tests:/,$p' "$node_log"; else cat "$node_log"; fi
  [ "$rc" -ne 0 ] || rc=1
fi
summary=$(grep -E '^ℹ (tests|pass|fail) ' "$node_log" | sed 's/^ℹ //' | paste -sd, - | sed 's/,/, /g' || true)
echo "dashboard modules, node --test tests/js: ${summary:-no summary (see above)}"
rm -f "$node_log"
printf '%s\n' "${summaries[@]}"
exit "$rc"
