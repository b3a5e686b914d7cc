"""Every server a Flask team deploys with, started for real on 127.0.0.1, from the recipes in docs/gunicorn.md.

Under each: N requests spread over the workers give N on every one of 20 back-to-back scrapes (our
request histograms, the app's own prometheus_client counter, and prometheus_client's default
registry never going backwards); one generated token, logged once, works on every worker; the
traces carry Flask's route templates (also behind an ASGI router with a catch-all ``/{path}`` and
the ASGI layer instrumented too); a worker SIGKILLed under load never takes a counted request back.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from .conftest import ROOT, free_port, stop_process, wait_for_port
from .test_gunicorn import get, request_total

pytestmark = pytest.mark.integration

DOCS = ROOT / "docs" / "gunicorn.md"
APP_COUNTER_RE = re.compile(r"^prefork_work_done_total ([0-9.e+]+)$", re.M)
#: every counter of prometheus_client's default registry: process_cpu_seconds_total, python_gc_*_total, ...
DEFAULT_COUNTER_RE = re.compile(r"^((?:process|python)_[a-z_]+_total)(\{[^}]*\})? ([0-9.e+]+)$", re.M)
TOKEN_LINE = "a random access token was generated"


def app_counter(body: str) -> float:
    (value,) = APP_COUNTER_RE.findall(body)
    return float(value)


def default_counters(body: str) -> dict[str, float]:
    return {name + labels: float(value) for name, labels, value in DEFAULT_COUNTER_RE.findall(body)}


def decreases(series: list[dict[str, float]]) -> list[tuple]:
    return [(k, a[k], b[k]) for a, b in zip(series, series[1:], strict=False) for k in a if b.get(k, a[k]) < a[k]]


# -- one recipe per server -------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    id: str
    #: the command as docs/gunicorn.md shows it (``app:app`` / ``asgi:app`` and port 8000 replaced here)
    recipe: str
    target: str
    workers: int
    #: SIGKILL a worker under load (servers that replace a dead worker)
    kill: bool = False


FLASK = "tests.apps.prefork_app:app"
SERVERS = [
    Server("gunicorn", "gunicorn -w 4 -b 127.0.0.1:8000 app:app", FLASK, 4),
    Server("gunicorn-gevent", "gunicorn -k gevent -w 2 -b 127.0.0.1:8000 app:app", FLASK, 2),
    Server("gunicorn-max-requests", "gunicorn -w 2 --max-requests 40 -b 127.0.0.1:8000 app:app", FLASK, 2),
    Server(
        "uwsgi",
        "uwsgi --master --die-on-term --enable-threads --processes 3 --http-socket 127.0.0.1:8000 --module app:app",
        FLASK,
        3,
        kill=True,
    ),
    Server(
        "uwsgi-lazy-apps",
        "uwsgi --master --die-on-term --enable-threads --lazy-apps --processes 2 "
        "--http-socket 127.0.0.1:8000 --module app:app",
        FLASK,
        2,
    ),
    Server(
        "uwsgi-threads",
        "uwsgi --master --die-on-term --processes 2 --threads 4 --http-socket 127.0.0.1:8000 --module app:app",
        FLASK,
        2,
    ),
    Server(
        "uvicorn-a2wsgi",
        "uvicorn --workers 2 --interface wsgi --host 127.0.0.1 --port 8000 app:app",
        FLASK,
        2,
        kill=True,
    ),
    Server(
        "uvicorn-wsgi-middleware",
        "uvicorn --workers 2 --host 127.0.0.1 --port 8000 asgi:app",
        "tests.apps.asgi_app:uvicorn_wsgi_app",
        2,
    ),
    Server(
        "uvicorn-starlette-mount-instrumented",
        "uvicorn --workers 2 --host 127.0.0.1 --port 8000 asgi:app",
        "tests.apps.asgi_app:mounted",
        2,
    ),
    Server("hypercorn-a2wsgi", "hypercorn --workers 2 -b 127.0.0.1:8000 asgi:app", "tests.apps.asgi_app:a2wsgi_app", 2),
    Server("waitress", "waitress-serve --threads 8 --listen 127.0.0.1:8000 app:app", FLASK, 1),
    Server("mod_wsgi", "WSGIDaemonProcess app processes=2 threads=4", FLASK, 2),
]


APACHE_CONF = """\
ServerRoot /etc/apache2
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule wsgi_module {module}
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
PidFile {run}/httpd.pid
DefaultRuntimeDir {run}
ErrorLog /dev/stderr
{user}
{recipe} python-path={root}:{site}
WSGIProcessGroup app
WSGIApplicationGroup %{{GLOBAL}}
WSGIPassAuthorization On
WSGIScriptAlias / {root}/tests/apps/mod_wsgi_app.wsgi
<Directory {root}/tests/apps>
Require all granted
</Directory>
"""


def apache(server: Server, port: int, scratch: list[str]) -> list[str]:
    """Apache in the foreground with the recipe's daemon processes (Debian's apache2 and
    libapache2-mod-wsgi-py3, built for the system's Python 3.11)."""
    import sysconfig
    import tempfile

    module = Path("/usr/lib/apache2/modules/mod_wsgi.so")
    binary = shutil.which("apache2") or "/usr/sbin/apache2"
    if not module.exists() or not Path(binary).exists() or sys.version_info[:2] != (3, 11):
        pytest.skip("Apache mod_wsgi needs apt-get install apache2 libapache2-mod-wsgi-py3 (for Python 3.11)")
    run = tempfile.mkdtemp(prefix="otel_monitor-apache-")
    scratch.append(run)
    os.chmod(run, 0o755)  # the daemon processes (user nobody under root) reach their sockets here
    user = "User nobody\nGroup nogroup" if os.getuid() == 0 else ""
    conf = Path(run) / "httpd.conf"
    conf.write_text(
        APACHE_CONF.format(
            module=module,
            port=port,
            run=run,
            user=user,
            recipe=server.recipe,
            root=ROOT,
            site=sysconfig.get_paths()["purelib"],
        )
    )
    return [binary, "-f", str(conf), "-DFOREGROUND"]


def command(server: Server, port: int, scratch: list[str]) -> list[str]:
    if server.recipe.startswith("WSGIDaemonProcess"):
        return apache(server, port, scratch)
    words = [w.replace("8000", str(port)) for w in shlex.split(server.recipe)]
    words = [server.target if w in ("app:app", "asgi:app") else w for w in words]
    program, args = words[0], words[1:]
    bin_dir = Path(sys.executable).parent
    if program == "uwsgi":
        binary = bin_dir / "uwsgi"
        if not binary.exists():
            pytest.skip("uWSGI is not installed (pip install uwsgi: it compiles)")
        return [str(binary), *args, "--virtualenv", sys.prefix]
    module = {"waitress-serve": "waitress"}.get(program, program)
    return [sys.executable, "-m", module, *args]


@pytest.fixture
def serve(tmp_path):
    procs: list[subprocess.Popen] = []
    scratch: list[str] = []  # directories outside tmp_path (Apache's, readable by its daemon user)

    def start(server: Server) -> tuple[str, subprocess.Popen, Path]:
        port = free_port()
        log_path = tmp_path / f"{server.id}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SERVICE_NAME": "servers"}
        proc = subprocess.Popen(
            command(server, port, scratch), cwd=str(ROOT), env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT
        )
        procs.append(proc)
        wait_for_port(port, timeout=60, proc=proc)
        base = f"http://127.0.0.1:{port}"
        # every worker up and past its first request: batches of 8 concurrent clients (an async
        # worker accepts all it can; concurrency reaches the others), at most 60 s
        pids: set[str] = set()
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(8) as pool:
            while len(pids) < server.workers and time.monotonic() < deadline:
                pids.update(pool.map(lambda _: warm_up(base + "/pid?sleep=0.05"), range(8)))
        assert len(pids) == server.workers, (pids, log_path.read_text()[-3000:])
        return base, proc, log_path

    yield start
    for proc in procs:
        stop_process(proc)
    for directory in scratch:
        shutil.rmtree(directory, ignore_errors=True)


def warm_up(url: str) -> str:
    """A request while the workers still import the app (a busy machine: seconds each)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read().decode()


def worker_pids(master: subprocess.Popen) -> list[int]:
    children = psutil.Process(master.pid).children()
    return [c.pid for c in children if not any("resource_tracker" in part for part in c.cmdline())]


def api(base: str, path: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(base + "/otel-monitor" + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def fail(base: str, i: int) -> str:
    try:
        urllib.request.urlopen(f"{base}/boom/{i}", timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 500
        return exc.headers["X-Worker-Pid"]
    raise AssertionError("/boom answered without failing")


def recipes_shown(text: str) -> list[str]:
    """The server command lines of the code blocks in ``text`` (comments dropped)."""
    blocks = re.findall(r"^```\n(.*?)^```", text, re.M | re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    servers = ("gunicorn", "uwsgi", "uvicorn", "hypercorn", "waitress-serve", "WSGIDaemonProcess")
    return [line for line in lines if line.split(" ")[0] in servers]


def test_every_server_recipe_in_the_readme_and_the_docs_is_one_the_suite_runs():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Servers:") :]
    section = section[: section.index("\n## ")]
    shown = recipes_shown(section) + recipes_shown(DOCS.read_text())
    assert len(shown) >= len(SERVERS) - 2  # two recipes differ only by the ASGI app they serve
    assert sorted(set(shown) - {s.recipe for s in SERVERS}) == []


@pytest.mark.parametrize("server", SERVERS, ids=[s.id for s in SERVERS])
def test_every_server_counts_exactly_shares_one_token_and_keeps_flasks_routes(serve, server):
    assert server.recipe in DOCS.read_text(), f"{server.id}: the recipe is not in docs/gunicorn.md"
    base, master, log = serve(server)

    # N requests spread over the workers: N on every one of 20 back-to-back scrapes
    n = 120
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: get(f"{base}/work/{i}"), range(n)))
    scrapes = [get(base + "/metrics") for _ in range(20)]
    assert [request_total(body) for body in scrapes] == [n] * 20
    assert [app_counter(body) for body in scrapes] == [n] * 20
    assert decreases([default_counters(body) for body in scrapes]) == []

    # one token for the group, logged once, working on every worker
    text = log.read_text(errors="replace")
    assert text.count(TOKEN_LINE) == 1, text[-3000:]
    (token,) = set(re.findall(r"\?token=([A-Za-z0-9_\-]+)", text))
    for _ in range(4 * server.workers):
        status, body = api(base, "/endpoints?window=all", token)
        assert status == 200
        assert [r["count"] for r in body["endpoints"] if r["route"] == "/work/<int:n>"] == [n]

    # traces from every worker, named by Flask's route templates (never the ASGI router's /{path})
    # in rounds of 8 until two workers answered (a busy machine may have one still booting after
    # a --max-requests recycle), at most 6 rounds
    failing = 0
    served_by: set[str] = set()
    with ThreadPoolExecutor(4) as pool:
        while len(served_by) < min(2, server.workers) and failing < 48:
            served_by.update(pool.map(lambda i: fail(base, i), range(failing, failing + 8)))
            failing += 8
    assert len(served_by) >= min(2, server.workers)
    deadline = time.monotonic() + 30
    while len(api(base, "/traces?kind=failed&limit=100", token)[1].get("traces", [])) < failing:
        assert time.monotonic() < deadline, "the failed requests never all showed in /traces"
        time.sleep(0.2)
    traces = api(base, "/traces?kind=failed&limit=100", token)[1]["traces"]
    assert {(t["name"], t["route"]) for t in traces} == {("GET /boom/<int:n>", "/boom/<int:n>")}
    # another worker sees a tree once its owner published it (each worker publishes every 2 s while busy)
    deadline = time.monotonic() + 30
    while (answer := api(base, f"/traces/{traces[0]['trace_id']}", token))[0] != 200:
        assert answer[0] == 404 and time.monotonic() < deadline, answer
        time.sleep(0.2)
    tree = answer[1]
    server_spans = [s for s in tree["spans"] if s["kind"] == "server"]
    assert [s["name"] for s in server_spans] == ["GET /boom/<int:n>"]
    assert server_spans[0]["attributes"]["http.route"] == "/boom/<int:n>"
    # the ASGI instrumentation's own (old-convention) family keeps its http_target; no route is /{path}
    assert "/{path}" not in get(base + "/metrics").replace('http_target="/{path}"', "")

    if server.kill:
        totals = killed_under_load(base, master)
        assert decreases([{"total": t} for t in totals]) == []


def killed_under_load(base: str, master: subprocess.Popen) -> list[float]:
    """Bounded load from 4 clients, scraped continuously; one worker SIGKILLed a third of the way."""
    totals: list[float] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            try:
                totals.append(request_total(get(base + "/metrics")))
            except (OSError, http.client.HTTPException):
                pass  # the scrape the killed worker was answering
            time.sleep(0.02)

    def load(i: int) -> None:
        if i == 100:
            os.kill(worker_pids(master)[0], signal.SIGKILL)
        try:
            get(f"{base}/work/{i}")
        except (OSError, http.client.HTTPException):
            pass  # the request the killed worker was serving (URLError is an OSError)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(load, range(300)))
    finally:
        done.set()
        scraper.join(30)
    during = len(totals)
    totals.extend(request_total(get(base + "/metrics")) for _ in range(10))
    assert during > 0 and totals[-10:] == [totals[-1]] * 10
    return totals
