# shellcheck shell=bash
# Sourced by test.sh: each gate (ruff check, ruff format, mypy, pytest, node) prints its one-line
# result as soon as it finishes, and the same lines again in the summary at the end.
# GATE_RC becomes 1 when a gate fails; the run goes on, so one run shows every finding.

GATE_RESULTS=()
# shellcheck disable=SC2034  # read by the script that sources this file
GATE_RC=0

# gate_result LABEL ok|FAILED DETAIL: one gate's line, printed now and kept for the summary
gate_result() {
  local line="$1: $2${3:+, $3}"
  GATE_RESULTS+=("$line")
  echo "$line"
  if [ "$2" != ok ]; then
    # shellcheck disable=SC2034  # read by the script that sources this file
    GATE_RC=1
  fi
}

# check LABEL SUMMARY_REGEX COMMAND...: runs a quiet tool; its findings are shown only when it
# fails, its summary line (the last matching SUMMARY_REGEX) in the result either way
check() {
  local label=$1 pattern=$2 log line started=$SECONDS
  shift 2
  echo "$label ..."
  log=$(mktemp)
  if "$@" >"$log" 2>&1; then
    line=$(grep -E "$pattern" "$log" | tail -n1 || true)
    gate_result "$label" ok "${line:+$line, }$((SECONDS - started)) s"
  else
    cat "$log"
    line=$(grep -E "$pattern" "$log" | tail -n1 || true)
    gate_result "$label" FAILED "${line:-$(tail -n1 "$log")} (its findings are printed above the tests)"
  fi
  rm -f "$log"
}

print_summary() {
  echo "summary:"
  printf '  %s\n' "${GATE_RESULTS[@]}"
}
