#!/usr/bin/env bash
# Install otel_monitor into .venv and run the example app on 127.0.0.1:8000 with monitoring and
# bounded synthetic traffic; prints the URLs to open. Ctrl-C stops it. No servers to install.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# pip's build warnings would bury the output: shown only when the install fails
pip_log=$(mktemp)
if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e .; } >"$pip_log" 2>&1; then
  cat "$pip_log"; echo "pip install failed"; exit 1
fi
rm -f "$pip_log"
exec .venv/bin/otel-monitor demo --traffic "${TRAFFIC_SECONDS:-20}" "$@"
