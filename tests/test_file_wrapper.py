"""wsgi.file_wrapper responses keep the server's sendfile path and are timed at close().

The app gets a ``wsgi.file_wrapper`` of ours, which hands the server's own wrapper a proxy of the
app's file: the server gets back an object it made and keeps its sendfile path, nothing is set on
its object, and the proxy's ``close()`` ends the request.
"""

from __future__ import annotations

import gc
import io
import os
import re
import subprocess
import sys
import threading
import urllib.request
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from wsgiref.util import FileWrapper

import pytest
from flask import Flask, Response, request, send_file
from opentelemetry import trace
from werkzeug.wsgi import wrap_file

from otel_monitor import Monitor
from otel_monitor.testing import Telemetry

from .conftest import ROOT, free_port, stop_process, wait_for_port


def environ(**extra):
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/file",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.file_wrapper": FileWrapper,
        **extra,
    }


DATA = b"x" * 100_000


@pytest.fixture
def file_app(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(DATA)
    app = Flask("files")
    app.config["FILE_PATH"] = path

    @app.get("/file")
    def serve():
        return send_file(path, mimetype="application/octet-stream")

    monitor = Monitor(app, system_metrics=False, analytics=False, metrics_body_size=True)
    yield app, Telemetry(monitor)
    monitor.shutdown(1)


def no_start_response(status, headers, exc_info=None):
    return None


def duration_count(telemetry: Telemetry) -> int:
    return sum(p.count for p in telemetry.points("http.server.request.duration"))


def active(telemetry: Telemetry) -> int:
    return sum(p.value for p in telemetry.points("http.server.active_requests"))


class SlottedFileWrapper:
    """A server's file wrapper with ``__slots__`` (no attribute can be set on it)."""

    __slots__ = ("filelike", "blksize")

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self):
        while chunk := self.filelike.read(self.blksize):
            yield chunk

    def close(self):
        self.filelike.close()


class Handed:
    """A server's ``wsgi.file_wrapper`` that returns what it was handed (as uWSGI's does), noting it."""

    def __init__(self):
        self.handed: list[object] = []

    def __call__(self, filelike, block_size=None):
        self.handed.append(filelike)
        return filelike


def test_the_server_gets_back_its_own_file_wrapper_and_the_request_ends_at_its_close(file_app):
    app, telemetry = file_app
    statuses = []
    result = app.wsgi_app(environ(), lambda status, headers, exc_info=None: statuses.append(status))
    assert type(result) is FileWrapper  # what a server checks before using sendfile
    assert statuses == ["200 OK"]
    assert telemetry.points("http.server.request.duration") == []  # not before close()
    assert sum(p.value for p in telemetry.points("http.server.active_requests")) == 1
    result.close()
    point = telemetry.point("http.server.request.duration")
    assert point.count == 1 and point.attributes["http.route"] == "/file"
    assert telemetry.point("http.server.response.body.size").sum == 100_000
    assert sum(p.value for p in telemetry.points("http.server.active_requests")) == 0
    (span,) = telemetry.spans()
    assert span.name == "GET /file"


def test_a_file_wrapper_the_server_drops_without_close_is_still_recorded_once(file_app):
    app, telemetry = file_app
    result = app.wsgi_app(environ(), lambda status, headers, exc_info=None: None)
    result.filelike.close()
    del result
    gc.collect()
    assert telemetry.point("http.server.request.duration").count == 1
    assert sum(p.value for p in telemetry.points("http.server.active_requests")) == 0


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_file_wrapper_dropped_with_no_close_at_all_is_recorded_once_when_collected(file_app):
    app, telemetry = file_app
    result = app.wsgi_app(environ(), no_start_response)
    assert duration_count(telemetry) == 0
    del result
    gc.collect()
    assert duration_count(telemetry) == 1
    assert active(telemetry) == 0
    assert duration_count(telemetry) == 1  # a second reading records nothing more


def test_the_server_gets_its_own_file_wrapper_back_in_the_environ_after_the_app_returns(file_app):
    app, _ = file_app
    offered = []

    @app.get("/offered")
    def offered_view():
        offered.append(request.environ["wsgi.file_wrapper"])
        return "ok"

    for path in ("/file", "/offered"):
        env = environ(PATH_INFO=path)
        result = app.wsgi_app(env, no_start_response)
        # gunicorn checks isinstance(result, environ["wsgi.file_wrapper"]) after the app returned
        assert env["wsgi.file_wrapper"] is FileWrapper
        result.close()
    assert offered[0] is not FileWrapper and callable(offered[0])


def test_the_file_wrapper_offered_to_the_app_is_made_once_per_server_wrapper(file_app):
    app, _ = file_app
    offered = []

    @app.get("/offered")
    def offered_view():
        offered.append(request.environ["wsgi.file_wrapper"])
        return "ok"

    for wrapper in (FileWrapper, FileWrapper, SlottedFileWrapper, SlottedFileWrapper):
        app.wsgi_app(environ(PATH_INFO="/offered", **{"wsgi.file_wrapper": wrapper}), no_start_response).close()
    assert offered[0] is offered[1] and offered[2] is offered[3] and offered[0] is not offered[2]


def test_a_server_wrapper_with_slots_keeps_its_object_and_the_request_ends_at_its_close(file_app):
    app, telemetry = file_app
    result = app.wsgi_app(environ(**{"wsgi.file_wrapper": SlottedFileWrapper}), no_start_response)
    assert type(result) is SlottedFileWrapper
    assert duration_count(telemetry) == 0
    assert b"".join(result) == DATA
    result.close()
    assert duration_count(telemetry) == 1
    assert telemetry.point("http.server.response.body.size").sum == 100_000
    assert active(telemetry) == 0


def test_a_server_wrapper_that_hands_back_the_file_gets_that_same_object_back(file_app):
    # uWSGI: its wsgi.file_wrapper returns the file it was given and sends with sendfile() only
    # when the app returns that very object
    app, telemetry = file_app
    handed = Handed()
    result = app.wsgi_app(environ(**{"wsgi.file_wrapper": handed}), no_start_response)
    assert handed.handed == [result]
    assert result.read(3) == b"xxx" and result.fileno() > 2
    assert duration_count(telemetry) == 0
    result.close()
    result.close()
    assert duration_count(telemetry) == 1
    assert active(telemetry) == 0


def test_the_block_size_reaches_the_servers_wrapper_as_the_app_passed_it(file_app):
    app, telemetry = file_app
    made = []

    @app.get("/sized")
    def sized():
        wrapper = request.environ["wsgi.file_wrapper"]
        made.extend([wrapper(open(app.config["FILE_PATH"], "rb"), 1000), wrapper(io.BytesIO(b"ab"), blksize=7)])
        made.append(wrapper(io.BytesIO(b"ab")))
        for extra in made[:2]:
            extra.close()
        return Response(made[2], direct_passthrough=True)

    result = app.wsgi_app(environ(PATH_INFO="/sized"), no_start_response)
    assert [wrapper.blksize for wrapper in made] == [1000, 7, 8192]
    assert result is made[2] and b"".join(result) == b"ab"
    result.close()
    assert duration_count(telemetry) == 1


def test_the_server_sees_exactly_the_attributes_of_the_apps_file_plus_close(file_app):
    app, telemetry = file_app

    class ReadOnly:
        def __init__(self):
            self.left = b"abc"

        def read(self, size=-1):
            chunk, self.left = self.left, b""
            return chunk

    real = open(app.config["FILE_PATH"], "rb")  # closed through the response

    @app.get("/read-only")
    def read_only():
        return Response(wrap_file(request.environ, ReadOnly()), direct_passthrough=True)

    @app.get("/real")
    def real_file():
        return Response(wrap_file(request.environ, real), direct_passthrough=True)

    handed = Handed()
    first = app.wsgi_app(environ(PATH_INFO="/read-only", **{"wsgi.file_wrapper": handed}), no_start_response)
    second = app.wsgi_app(environ(PATH_INFO="/real", **{"wsgi.file_wrapper": handed}), no_start_response)
    read_only_seen, real_seen = handed.handed
    # servers choose their path by these (gunicorn's has_fileno, waitress's seekable check)
    names = ("read", "fileno", "seek", "tell", "seekable", "close")
    assert [name for name in names if hasattr(read_only_seen, name)] == ["read", "close"]
    assert read_only_seen.read() == b"abc"
    assert real_seen.fileno() == real.fileno() and real_seen.mode == "rb" and real_seen.seekable()
    assert real_seen.tell() == 0 and real_seen.seek(99_998) == 99_998 and real_seen.read() == b"xx"
    first.close()
    second.close()
    assert real.closed
    assert duration_count(telemetry) == 2


def test_the_file_is_closed_exactly_once_with_the_request_span_current(file_app):
    app, telemetry = file_app
    seen = []

    class Tracked:
        def read(self, size=-1):
            return b""

        def fileno(self):
            raise OSError("not a real file")

        def close(self):
            seen.append(trace.get_current_span().get_span_context().span_id)

    @app.get("/tracked")
    def tracked():
        return Response(wrap_file(request.environ, Tracked()), direct_passthrough=True)

    result = app.wsgi_app(environ(PATH_INFO="/tracked"), no_start_response)
    assert type(result) is FileWrapper
    result.close()
    result.close()
    (span,) = telemetry.spans()
    assert seen == [span.context.span_id]
    assert duration_count(telemetry) == 1


def test_an_app_that_raises_after_making_a_file_wrapper_leaves_nothing_of_it_behind(file_app):
    app, telemetry = file_app
    app.config["PROPAGATE_EXCEPTIONS"] = True
    files = []

    @app.get("/raises")
    def raises():
        file = open(app.config["FILE_PATH"], "rb")  # closed through the wrapper below
        files.append(weakref.ref(file))
        wrap_file(request.environ, file).close()
        del file  # the traceback keeps this frame
        raise LookupError("after the file wrapper")

    env = environ(PATH_INFO="/raises")
    with pytest.raises(LookupError):
        app.wsgi_app(env, no_start_response)
    gc.collect()
    assert env["wsgi.file_wrapper"] is FileWrapper
    assert files[0]() is None  # neither the file nor its proxy is kept by the monitoring
    assert telemetry.point("http.server.request.duration").attributes["error.type"] == "LookupError"
    assert active(telemetry) == 0


def test_concurrent_requests_each_end_at_their_own_files_close(file_app, tmp_path):
    app, telemetry = file_app
    for i in range(8):
        (tmp_path / f"{i}.bin").write_bytes(bytes([65 + i]) * 1000)
    together = threading.Barrier(8, timeout=60)

    @app.get("/n/<int:i>")
    def numbered(i):
        response = send_file(tmp_path / f"{i}.bin", mimetype="application/octet-stream")
        together.wait()  # every request inside its app call, each with its file wrapper made
        return response

    def one(i):
        result = app.wsgi_app(environ(PATH_INFO=f"/n/{i}"), no_start_response)
        assert type(result) is FileWrapper
        return result

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for i, result in enumerate(results):
        assert b"".join(result) == bytes([65 + i]) * 1000
        assert duration_count(telemetry) == i
        result.close()
    assert duration_count(telemetry) == 8
    assert telemetry.point("http.server.response.body.size").sum == 8000
    assert active(telemetry) == 0


def test_a_head_request_for_a_file_ends_once_when_its_empty_body_is_closed(file_app):
    # Werkzeug answers HEAD (and 304) with an empty body: the file wrapper the app made is not the
    # response, its file is closed with the body, and the request ends there once
    app, telemetry = file_app
    result = app.wsgi_app(environ(REQUEST_METHOD="HEAD"), no_start_response)
    gc.collect()
    assert duration_count(telemetry) == 0
    assert b"".join(result) == b""
    result.close()
    assert duration_count(telemetry) == 1
    assert active(telemetry) == 0


def test_a_file_wrapper_the_app_makes_and_drops_does_not_end_the_request(file_app):
    app, telemetry = file_app
    opened = []

    @app.get("/dropped")
    def dropped():
        file = open(app.config["FILE_PATH"], "rb")  # closed below, through the wrapper
        opened.append(file)
        wrap_file(request.environ, file).close()
        wrap_file(request.environ, open(app.config["FILE_PATH"], "rb"))  # dropped unclosed
        return "ok"

    with pytest.warns(ResourceWarning):
        result = app.wsgi_app(environ(PATH_INFO="/dropped"), no_start_response)
        gc.collect()
    assert opened[0].closed
    assert duration_count(telemetry) == 0 and active(telemetry) == 1
    assert b"".join(result) == b"ok"
    result.close()
    assert duration_count(telemetry) == 1
    assert telemetry.point("http.server.response.body.size").sum == 2


def test_a_server_wrapper_the_app_builds_itself_is_served_as_a_timed_body(file_app):
    # e.g. from an environ taken before the middleware: not made through our wrapper
    app, telemetry = file_app
    file = open(app.config["FILE_PATH"], "rb")  # closed through the response

    @app.get("/own")
    def own():
        return Response(FileWrapper(file), direct_passthrough=True, headers={"Content-Length": "100000"})

    result = app.wsgi_app(environ(PATH_INFO="/own"), no_start_response)
    assert type(result) is not FileWrapper  # a body of ours: the server iterates it
    assert b"".join(result) == DATA
    result.close()
    assert file.closed
    assert duration_count(telemetry) == 1
    assert telemetry.point("http.server.response.body.size").sum == 100_000


def test_a_file_wrapper_called_from_another_thread_gets_the_server_wrapper_of_the_plain_file(file_app):
    app, telemetry = file_app
    file = open(app.config["FILE_PATH"], "rb")  # closed through the response

    @app.get("/threaded")
    def threaded():
        wrapper = request.environ["wsgi.file_wrapper"]
        with ThreadPoolExecutor(1) as pool:
            made = pool.submit(wrapper, file, 4096).result()
        assert made.filelike is file
        return Response(made, direct_passthrough=True)

    result = app.wsgi_app(environ(PATH_INFO="/threaded"), no_start_response)
    assert b"".join(result) == DATA
    result.close()
    assert file.closed
    assert duration_count(telemetry) == 1


def test_send_file_inside_a_span_of_the_app_keeps_the_servers_object(file_app):
    app, telemetry = file_app

    @app.get("/in-span")
    def in_span():
        with trace.get_tracer("app").start_as_current_span("lookup"):
            return send_file(app.config["FILE_PATH"], mimetype="application/octet-stream")

    result = app.wsgi_app(environ(PATH_INFO="/in-span"), no_start_response)
    assert type(result) is FileWrapper
    assert duration_count(telemetry) == 0
    result.close()
    assert duration_count(telemetry) == 1


def test_a_file_wrapper_called_under_another_trace_gets_the_server_wrapper_of_the_plain_file(file_app):
    # as when greenlets share a thread ident: the request found for the thread is not the caller's
    app, telemetry = file_app
    file = open(app.config["FILE_PATH"], "rb")  # closed through the response
    elsewhere = trace.NonRecordingSpan(trace.SpanContext(trace_id=0x1234, span_id=0x99, is_remote=True))

    @app.get("/elsewhere")
    def other_trace():
        with trace.use_span(elsewhere):
            made = wrap_file(request.environ, file)
        assert made.filelike is file
        return Response(made, direct_passthrough=True)

    result = app.wsgi_app(environ(PATH_INFO="/elsewhere"), no_start_response)
    assert b"".join(result) == DATA
    result.close()
    assert file.closed
    assert duration_count(telemetry) == 1


def test_a_server_wrapper_that_rejects_our_proxy_gets_the_apps_file_itself(file_app, caplog):
    app, telemetry = file_app

    class Strict(FileWrapper):
        def __init__(self, filelike, blksize=8192):
            if not isinstance(filelike, io.IOBase):  # only real files
                raise TypeError("a real file, please")
            super().__init__(filelike, blksize)

    result = app.wsgi_app(environ(**{"wsgi.file_wrapper": Strict}), no_start_response)
    assert type(result) is not Strict  # the server's wrapper of the plain file, in a body of ours
    assert b"".join(result) == DATA
    result.close()
    assert duration_count(telemetry) == 1
    assert "wrapping the app's file for the server" in caplog.text


def test_an_unhashable_server_wrapper_still_gets_its_object_back_and_ends_the_request_at_close(file_app):
    app, telemetry = file_app

    class Unhashable:
        __hash__ = None

        def __call__(self, filelike, block_size=8192):
            return FileWrapper(filelike, block_size)

    env = environ(**{"wsgi.file_wrapper": Unhashable()})
    server_wrapper = env["wsgi.file_wrapper"]
    result = app.wsgi_app(env, no_start_response)
    assert type(result) is FileWrapper and env["wsgi.file_wrapper"] is server_wrapper
    assert b"".join(result) == DATA
    assert duration_count(telemetry) == 0
    result.close()
    assert duration_count(telemetry) == 1


def test_without_a_server_file_wrapper_the_body_is_wrapped_and_timed_as_before(file_app):
    app, telemetry = file_app
    env = environ()
    del env["wsgi.file_wrapper"]
    result = app.wsgi_app(env, lambda status, headers, exc_info=None: None)
    assert b"".join(result) == b"x" * 100_000
    result.close()
    assert telemetry.point("http.server.response.body.size").sum == 100_000


SENDFILE_PROBE = """
import gunicorn.http.wsgi as _wsgi

_original = _wsgi.Response.sendfile


def _sendfile(self, respiter):
    sent = _original(self, respiter)
    with open({marker!r}, "a") as out:
        out.write(f"{{type(respiter).__name__}} {{sent}}\\n")
    return sent


_wsgi.Response.sendfile = _sendfile
"""


def served_file_metrics(command: list[str], tmp_path: Path, route: str) -> tuple[Path, str, Path]:
    """Start ``command`` (a server of ``tests.apps.file_app`` on ``{port}``), fetch ``route`` three
    times (each body checked), then ``/metrics``: the file served, the metrics text and the reads log."""
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(1_000_000))
    reads = tmp_path / "reads.log"
    port = free_port()
    log = open(tmp_path / "server.log", "w")  # the server's output, closed below
    proc = subprocess.Popen(
        [word.format(port=port) for word in command],
        cwd=str(ROOT),
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FILE_APP_PATH": str(path),
            "FILE_APP_READS": str(reads),
            "OTEL_MONITOR_METRICS_BODY_SIZE": "true",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc=proc)
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=60) as response:
                assert response.read() == path.read_bytes()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
            metrics = response.read().decode()
    finally:
        stop_process(proc)
        log.close()
    return path, metrics, reads


def route_count_and_size(metrics: str, route: str) -> tuple[float | None, float | None]:
    """The route's request count and response-size sum in the Prometheus text (None: absent)."""
    found = []
    for name in ("http_server_request_duration_seconds_count", "http_server_response_body_size_bytes_sum"):
        match = re.search(rf'^{name}\{{[^}}]*http_route="{re.escape(route)}"[^}}]*\}} (\S+)$', metrics, re.M)
        found.append(float(match.group(1)) if match else None)
    return found[0], found[1]


@pytest.mark.integration
def test_under_real_gunicorn_send_file_goes_out_through_sendfile_and_is_measured(tmp_path):
    marker = tmp_path / "sendfile.log"
    config = tmp_path / "probe.py"
    config.write_text(SENDFILE_PROBE.format(marker=str(marker)))
    command = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "-c", str(config)]
    command += ["tests.apps.file_app:app"]
    _, metrics, _ = served_file_metrics(command, tmp_path, "/file")
    assert marker.read_text().splitlines() == ["FileWrapper True"] * 3
    assert route_count_and_size(metrics, "/file") == (3, 3_000_000)


@pytest.mark.integration
def test_under_real_uwsgi_send_file_goes_out_through_sendfile_and_is_measured(tmp_path):
    # uWSGI's wsgi.file_wrapper hands back the file it was given and sends it with sendfile() from
    # its fileno() when the app returns that very object: the file is never read through Python
    uwsgi = Path(sys.executable).parent / "uwsgi"
    if not uwsgi.exists():
        pytest.skip("uWSGI is not installed (pip install uwsgi: it compiles)")
    command = [str(uwsgi), "--master", "--die-on-term", "--enable-threads", "--processes", "1"]
    command += ["--http-socket", "127.0.0.1:{port}", "--module", "tests.apps.file_app:app"]
    command += ["--virtualenv", sys.prefix]
    _, metrics, reads = served_file_metrics(command, tmp_path, "/counted")
    assert not reads.exists()
    assert route_count_and_size(metrics, "/counted") == (3, 3_000_000)


READING_SERVERS = {
    # offers no wsgi.file_wrapper: the body of ours is iterated
    "werkzeug": "from werkzeug.serving import run_simple; from tests.apps.file_app import app; "
    "run_simple('127.0.0.1', {port}, app, threaded=True)",
    # its wsgi.file_wrapper (ReadOnlyFileBasedBuffer) seeks, tells and reads the proxy
    "waitress": "import waitress; from tests.apps.file_app import app; waitress.serve(app, listen='127.0.0.1:{port}')",
}


@pytest.mark.integration
@pytest.mark.parametrize("server", sorted(READING_SERVERS))
def test_under_servers_that_read_the_file_send_file_is_served_and_measured(tmp_path, server):
    _, metrics, reads = served_file_metrics([sys.executable, "-c", READING_SERVERS[server]], tmp_path, "/counted")
    assert reads.exists() and len(reads.read_text().splitlines()) >= 3  # read through Python
    assert route_count_and_size(metrics, "/counted") == (3, 3_000_000)


@pytest.mark.integration
@pytest.mark.parametrize("preload", [False, True], ids=["gevent", "gevent-preload"])
def test_under_real_gunicorn_gevent_workers_send_file_takes_the_sendfile_path_and_is_measured(tmp_path, preload):
    # with --preload the app (and otel_monitor) is imported before gevent patches threading; a
    # gevent socket's sendfile() reads the file and sends it, so the probe is gunicorn's own
    marker = tmp_path / "sendfile.log"
    config = tmp_path / "probe.py"
    config.write_text(SENDFILE_PROBE.format(marker=str(marker)))
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "-b", "127.0.0.1:{port}"]
    command += ["-c", str(config), *(["--preload"] if preload else []), "tests.apps.file_app:app"]
    _, metrics, _ = served_file_metrics(command, tmp_path, "/counted")
    assert marker.read_text().splitlines() == ["FileWrapper True"] * 3
    assert route_count_and_size(metrics, "/counted") == (3, 3_000_000)
