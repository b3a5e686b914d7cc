# Sourced by demo.sh and test.sh: make .venv with a working pip, installing what a stock
# Debian/Ubuntu lacks for that (python3-venv: `python3 -m venv` fails without ensurepip).

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "need root for: $* (run it as root, or install sudo)" >&2; return 1
  fi
}

apt_install() {
  command -v apt-get >/dev/null || return 1
  echo "installing Debian packages: $*"
  as_root apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_venv() {
  if ! command -v python3 >/dev/null; then
    apt_install python3 python3-venv || { echo "install Python 3.10 or newer (Debian: sudo apt-get install python3 python3-venv)" >&2; exit 1; }
  fi
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "otel_monitor needs Python 3.10 or newer; python3 is $(python3 -V 2>&1)" >&2
    exit 1
  fi
  # A .venv left half-made by an earlier failed attempt has a python but no pip.
  if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    rm -rf .venv
  fi
  [ -x .venv/bin/python ] && return 0
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    pkg="python3-venv"
    if ! apt_install "$pkg"; then
      echo "python3 -m venv needs ensurepip; install it: sudo apt-get install $pkg" >&2
      exit 1
    fi
  fi
  python3 -m venv .venv
}

# pip's build warnings would bury the output: shown only when the install fails
pip_install() {
  local log
  log=$(mktemp)
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q "$@"; } >"$log" 2>&1; then
    cat "$log"; rm -f "$log"; echo "pip install $* failed" >&2; exit 1
  fi
  rm -f "$log"
}
