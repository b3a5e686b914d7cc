"""The README's quick start works as written: ./scripts/demo.sh, the URLs it prints, the curl commands.

The demo runs for real (scripts/demo.sh: pip install into .venv, then ``otel-monitor demo``) on a
free port; the README's ``127.0.0.1:8000`` is that port, its ``<token>`` the token the demo printed.
Nothing else is substituted: a URL, path, prefix or header the demo does not answer fails the test.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT, free_port, stop_process

README = ROOT / "README.md"
QUICKSTART = re.compile(r"<!-- quickstart:start -->(.*?)<!-- quickstart:end -->", re.S)
#: the lines the demo prints, by label, as the README shows them
LABELS = ("app", "metrics", "analytics", "health", "dashboard")
README_PORT = "127.0.0.1:8000"


def quickstart() -> str:
    match = QUICKSTART.search(README.read_text())
    assert match, "README.md lost its quickstart markers"
    return match.group(1)


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """./scripts/demo.sh on a free port: {"port", "token", "printed": {label: url}, "log": text so far}."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("demo") / "demo.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["./scripts/demo.sh", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "TRAFFIC_SECONDS": "4", "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240  # pip install -e . first (the packages are cached by then)
        text = ""
        while time.monotonic() < deadline and proc.poll() is None:
            text = log_path.read_text()
            if "traffic: done" in text:
                break
            time.sleep(0.2)
        assert "traffic: done" in text, f"the demo did not finish its traffic:\n{text[-3000:]}"
        printed = dict(re.findall(rf"^({'|'.join(LABELS)}):\s+(\S+)$", text, re.M))
        token = re.search(r"\?token=([\w-]+)", printed.get("dashboard", ""))
        assert token, f"no dashboard URL with a token:\n{text[-3000:]}"
        history = re.search(r"^history:\s+(\S+)", text, re.M)
        yield {
            "port": port,
            "token": token.group(1),
            "printed": printed,
            "log": text,
            "history": history.group(1) if history else None,
        }
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        stop_process(proc)


def as_run(text: str, demo: dict) -> str:
    """The README's text for this demo: its port, its token."""
    return text.replace(README_PORT, f"127.0.0.1:{demo['port']}").replace("<token>", demo["token"])


def open_url(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    """GET like a browser (cookies kept across redirects); the final status and body."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    request = urllib.request.Request(url, headers={"Accept": "text/html,*/*", **(headers or {})})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.integration
def test_the_demo_prints_the_lines_the_readme_shows(demo):
    shown = dict(re.findall(rf"^({'|'.join(LABELS)}):\s+(\S+)$", quickstart(), re.M))
    assert set(shown) == set(LABELS)
    assert {label: as_run(url, demo) for label, url in shown.items()} == demo["printed"]


@pytest.mark.integration
@pytest.mark.parametrize("label", LABELS)
def test_every_url_the_demo_prints_opens_as_printed(demo, label):
    url = demo["printed"][label]
    status, body = open_url(url)
    # /health is public and says 503 when a check fails (the demo's /api/error does that on purpose).
    assert status == 200 or (label == "health" and status == 503), (url, status, body[:300])
    if label == "dashboard":
        assert b'id="export-csv"' in body  # the page itself, not the login form


@pytest.mark.integration
def test_the_token_log_line_is_a_url_that_opens(demo):
    match = re.search(r"Open (http://\S+) ", demo["log"])
    assert match, demo["log"][-2000:]
    assert match.group(1) == demo["printed"]["dashboard"]
    assert open_url(match.group(1))[0] == 200


@pytest.mark.integration
def test_the_demo_keeps_its_history_in_a_sqlite_file_while_it_runs(demo):
    assert demo["history"], demo["log"][-2000:]
    base = demo["printed"]["app"].rstrip("/")
    status, body = open_url(
        base + "/professional-analytics/endpoints?window=1h", {"Authorization": f"Bearer {demo['token']}"}
    )
    assert status == 200, body[:300]
    with sqlite3.connect(demo["history"]) as conn:  # a history file, opened by the demo's first long window
        assert conn.execute("select count(*) from sqlite_master where type = 'table'").fetchone()[0] >= 1


@pytest.mark.integration
def test_every_demo_url_in_the_readme_answers_without_a_4xx(demo):
    readme = README.read_text()
    urls = sorted(set(re.findall(rf"http://{re.escape(README_PORT)}[^\s\"'`)]*", readme)))
    assert len(urls) >= 8, urls
    auth = {"Authorization": f"Bearer {demo['token']}"}
    for url in urls:
        status, body = open_url(as_run(url, demo), auth)
        assert status < 400 or (status == 503 and url.endswith("/health")), (url, status, body[:300])


@pytest.mark.integration
def test_the_readme_curl_commands_succeed_as_written(demo, tmp_path):
    commands = [
        line for block in code_blocks(quickstart(), "sh") for line in block.splitlines() if line.startswith("curl ")
    ]
    assert len(commands) >= 5, commands
    for command in commands:
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", as_run(command, demo)],
            cwd=tmp_path,
            env={**os.environ, "TOKEN": demo["token"]},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, (command, result.stdout[-500:], result.stderr[-500:])
        assert result.stdout.strip() or list(tmp_path.iterdir()), command
        if "%{http_code}" in command:
            assert result.stdout.rstrip().endswith(("200", "503")), (command, result.stdout[-200:])
    downloaded = {p.name for p in tmp_path.iterdir()}
    assert downloaded == {"otel-monitor-15m-csv.zip"}, downloaded


# -- the scripts' venv helper on a Debian without python3-venv -------------------------------------


def fake_bin(tmp_path: Path, *, apt: bool) -> Path:
    """A PATH with a python3 that lacks ensurepip until "apt-get install python3-venv" ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    flag = tmp_path / "venv-installed"
    real = shlex.quote(sys.executable)
    (bin_dir / "python3").write_text(
        "#!/bin/bash\n"
        f'if [[ "$*" == *"import ensurepip"* && ! -e {flag} ]]; then exit 1; fi\n'
        'if [[ "$1 $2" == "-m venv" ]]; then /bin/mkdir -p "$3/bin" && /bin/ln -s '
        + real
        + ' "$3/bin/python"; exit; fi\n'
        f'exec {real} "$@"\n'
    )
    if apt:
        (bin_dir / "apt-get").write_text(
            f'#!/bin/bash\necho "apt-get $*" >> {tmp_path}/apt.log\nif [[ "$1" == install ]]; then : > {flag}; fi\n'
        )
        (bin_dir / "sudo").write_text('#!/bin/bash\n"$@"\n')
        (bin_dir / "env").write_text('#!/bin/bash\nshift; "$@"\n')  # env DEBIAN_FRONTEND=... apt-get ...
        (bin_dir / "id").write_text("#!/bin/bash\necho 1000\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def ensure_venv(tmp_path: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/bash", "-c", f". {ROOT}/scripts/_venv.sh && ensure_venv"],
        cwd=tmp_path,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_python3_venv_and_apt_the_scripts_say_exactly_what_to_install(tmp_path):
    result = ensure_venv(tmp_path, fake_bin(tmp_path, apt=False))
    assert result.returncode == 1
    assert "sudo apt-get install python3-venv" in result.stderr
    assert not (tmp_path / ".venv").exists()


def test_without_python3_venv_the_scripts_install_it_with_apt_then_make_the_venv(tmp_path):
    result = ensure_venv(tmp_path, fake_bin(tmp_path, apt=True))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "apt.log").read_text().splitlines() == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends python3-venv",
    ]
    assert (tmp_path / ".venv" / "bin" / "python").exists()
