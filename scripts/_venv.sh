# shellcheck shell=bash
# Sourced by demo.sh and test.sh: make .venv with a working pip, installing what a stock
# Debian/Ubuntu lacks for that (python3-venv: `python3 -m venv` fails without ensurepip).
# Each slow step says what it installs and why it takes time before it starts, shows its progress
# (a line per package pip fetches) and how long it took, instead of a minute of silence.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "need root for: $* (run it as root, or install sudo)" >&2; return 1
  fi
}

apt_install() {  # apt_install PACKAGE...: the caller says first why it needs them
  command -v apt-get >/dev/null || return 1
  local started=$SECONDS
  echo "apt: installing Debian packages: $* (a one-time download; apt prints nothing until it is done)"
  as_root apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null &&
    echo "apt: done in $((SECONDS - started)) s"
}

ensure_venv() {
  if ! command -v python3 >/dev/null; then
    echo "Python 3 is missing: installing it first"
    apt_install python3 python3-venv || { echo "install Python 3.10 or newer (Debian: sudo apt-get install python3 python3-venv)" >&2; exit 1; }
  fi
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "otel_monitor needs Python 3.10 or newer; python3 is $(python3 -V 2>&1)" >&2
    exit 1
  fi
  # A .venv left half-made by an earlier failed attempt has a python but no pip.
  if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    echo "venv: .venv has no working pip (an earlier attempt stopped half-way): making it again"
    rm -rf .venv
  fi
  [ -x .venv/bin/python ] && return 0
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    pkg="python3-venv"
    echo "venv: python3 -m venv needs ensurepip, which Debian ships in $pkg"
    if ! apt_install "$pkg"; then
      echo "python3 -m venv needs ensurepip; install it: sudo apt-get install $pkg" >&2
      exit 1
    fi
  fi
  local started=$SECONDS
  echo "venv: creating .venv, a virtual environment for otel_monitor in this checkout ($(python3 -V 2>&1))"
  python3 -m venv .venv
  echo "venv: done in $((SECONDS - started)) s"
}

# pip's output, as it comes: a line per package it fetches or builds, then how many it installed
pip_progress() {
  local line news=0 words
  while IFS= read -r line; do
    case $line in
      "Collecting "*) news=1; printf '  %s\n' "${line#Collecting }" ;;
      "Building "*) printf '  %s\n' "${line,}" ;;
      "Successfully installed "*)
        news=1
        read -ra words <<<"$line"
        words=("${words[@]:2}")
        if [ "${#words[@]}" -eq 1 ]; then echo "  installed ${words[0]}"; else echo "  installed ${#words[@]} packages"; fi
        ;;
    esac
  done
  [ "$news" -eq 1 ] || echo "  everything already installed"
}

# pip_install WHAT PIP_ARGS...: announces WHAT, shows pip's progress; pip's build warnings would bury
# the output: its whole log is shown only when the install fails
pip_install() {
  local what=$1 log started=$SECONDS rc errexit=$-
  shift
  log=$(mktemp)
  echo "pip: installing $what into .venv (the first run downloads and builds them: a minute or two; later runs: seconds)"
  set +e
  { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
      .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off "$@"; } 2>&1 | tee "$log" | pip_progress
  rc=${PIPESTATUS[0]}
  case $errexit in *e*) set -e ;; esac
  if [ "$rc" -ne 0 ]; then
    cat "$log"; rm -f "$log"; echo "pip install $* failed" >&2; exit 1
  fi
  rm -f "$log"
  echo "pip: done in $((SECONDS - started)) s"
}
