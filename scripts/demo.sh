#!/usr/bin/env bash
# Install otel_monitor into .venv and run the example app on 127.0.0.1:8000 with monitoring and
# bounded synthetic traffic; prints the URLs to open. Ctrl-C stops it. No servers to install.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
exec .venv/bin/otel-monitor demo --traffic "${TRAFFIC_SECONDS:-20}" "$@"
