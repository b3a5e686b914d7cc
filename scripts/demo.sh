#!/usr/bin/env bash
# Install otel_monitor into .venv and run the example app on 127.0.0.1:8000 with monitoring and
# bounded synthetic traffic; prints the URLs to open (with their login token). Ctrl-C stops it.
# No servers to install. On a stock Debian/Ubuntu it installs python3-venv first (with sudo).
# Each set-up step says what it installs before it starts (the first run takes a minute or two).
# Arguments go to `otel-monitor demo` (e.g. --port 8080); TRAFFIC_SECONDS sets the traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
ensure_venv
pip_install "otel_monitor (editable) and what it runs on (OpenTelemetry SDK and exporters, Flask, psutil)" -e .
echo "demo: starting otel-monitor demo (the example app in examples/app.py, with ${TRAFFIC_SECONDS:-20} s of traffic)"
exec .venv/bin/otel-monitor demo --traffic "${TRAFFIC_SECONDS:-20}" "$@"
