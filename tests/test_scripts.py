"""The set-up scripts say what they do while they do it: each gate's result as it finishes, pip's
progress before a minute of downloads, and they pass shellcheck."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

SCRIPTS = ROOT / "scripts"


def bash(script: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_script_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck)")
    scripts = sorted(str(p.relative_to(ROOT)) for p in SCRIPTS.glob("*.sh")) + [".ci/run"]
    result = subprocess.run([shellcheck, "-x", *scripts], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_each_gate_prints_its_result_when_it_finishes_and_again_in_the_summary():
    result = bash(
        f""". {SCRIPTS}/_gates.sh
        check "lint" '^All checks passed' sh -c 'echo noise; echo "All checks passed!"'
        echo "between the gates"
        check "types" '^Found [0-9]+ error' sh -c 'echo "a.py:1: error: bad"; echo "Found 1 error"; exit 1'
        gate_result "tests, pytest" ok "3 passed in 0.1s"
        print_summary
        exit "$GATE_RC"
        """
    )
    assert result.returncode == 1, result.stderr  # a failed gate fails the run, after the others ran
    # the seconds a gate took are the machine's (a busy one takes 1 s for the echo): shown, not asserted
    lines = [re.sub(r", \d+ s$", ", N s", line) for line in result.stdout.splitlines()]
    assert lines == [
        "lint ...",
        "lint: ok, All checks passed!, N s",  # the quiet tool's output is not shown when it passes
        "between the gates",
        "types ...",
        "a.py:1: error: bad",  # a failing tool's findings, then its result at once
        "Found 1 error",
        "types: FAILED, Found 1 error (its findings are printed above the tests)",
        "tests, pytest: ok, 3 passed in 0.1s",
        "summary:",
        "  lint: ok, All checks passed!, N s",
        "  types: FAILED, Found 1 error (its findings are printed above the tests)",
        "  tests, pytest: ok, 3 passed in 0.1s",
    ]


def test_test_sh_runs_every_gate_through_the_gate_functions():
    text = (SCRIPTS / "test.sh").read_text()
    for label in ("lint, ruff check .", "format, ruff format --check .", "types, mypy"):
        assert f'check "{label}' in text, label
    assert 'gate_result "tests, pytest"' in text and 'gate_result "dashboard modules, node --test tests/js"' in text
    assert text.rstrip().endswith('print_summary\nexit "$GATE_RC"')
    assert "./scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def fake_venv(tmp_path: Path, pip_output: str, rc: int = 0) -> None:
    """A .venv whose python answers `-m pip install` with ``pip_output``."""
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    (tmp_path / "pip-output.txt").write_text(pip_output)
    python.write_text(
        "#!/bin/bash\n"
        'if [[ "$*" == *"--upgrade pip"* ]]; then exit 0; fi\n'
        f"cat {tmp_path / 'pip-output.txt'}\n"
        f"exit {rc}\n"
    )
    python.chmod(0o755)


PIP_OUTPUT = """\
Obtaining file:///src/otel_monitor
  Installing build dependencies: started
Collecting flask>=2.3 (from otel_monitor==9.9.9)
  Downloading flask-3.1.3-py3-none-any.whl (103 kB)
Collecting psutil>=5.9 (from otel_monitor==9.9.9)
  Using cached psutil-7.0.0.tar.gz (497 kB)
Building wheels for collected packages: otel_monitor
  warning: a build warning nobody needs to read
Successfully installed flask-3.1.3 otel_monitor-9.9.9 psutil-7.0.0
"""


def test_pip_install_says_what_it_installs_first_then_a_line_per_package(tmp_path):
    fake_venv(tmp_path, PIP_OUTPUT)
    result = bash(f'. {SCRIPTS}/_venv.sh\npip_install "the demo\'s packages" -e .', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("pip: installing the demo's packages into .venv (the first run downloads")
    assert lines[1:-1] == [
        "  flask>=2.3 (from otel_monitor==9.9.9)",
        "  psutil>=5.9 (from otel_monitor==9.9.9)",
        "  building wheels for collected packages: otel_monitor",
        "  installed 3 packages",
    ]
    assert lines[-1].startswith("pip: done in ") and lines[-1].endswith(" s")


@pytest.mark.parametrize(
    ("pip_output", "progress"),
    [
        ("Requirement already satisfied: flask>=2.3 in ./.venv/lib\n", ["  everything already installed"]),
        (  # a later run of an editable install: only the package itself is built again
            "Requirement already satisfied: flask>=2.3 in ./.venv/lib\n"
            "Building wheels for collected packages: otel_monitor\n"
            "Successfully installed otel_monitor-9.9.9\n",
            ["  building wheels for collected packages: otel_monitor", "  installed otel_monitor-9.9.9"],
        ),
    ],
)
def test_pip_install_says_when_there_was_little_or_nothing_to_do(tmp_path, pip_output, progress):
    fake_venv(tmp_path, pip_output)
    result = bash(f". {SCRIPTS}/_venv.sh\npip_install otel_monitor -e .", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:-1] == progress


def test_a_failing_pip_install_shows_pips_whole_output_and_stops(tmp_path):
    fake_venv(tmp_path, PIP_OUTPUT + "ERROR: No matching distribution found for nothing-such\n", rc=1)
    result = bash(f'. {SCRIPTS}/_venv.sh\npip_install otel_monitor -e .\necho "not reached"', cwd=tmp_path)
    assert result.returncode == 1
    assert "a build warning nobody needs to read" in result.stdout  # the log, now that it matters
    assert "ERROR: No matching distribution found for nothing-such" in result.stdout
    assert "not reached" not in result.stdout and "pip install -e . failed" in result.stderr
