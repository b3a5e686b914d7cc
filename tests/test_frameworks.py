"""Django, Falcon, Bottle and Pyramid under wrap(): route templates as in Flask, bounded series, the
exception class of a 500, a sensible service.name."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from werkzeug.test import Client, EnvironBuilder

import otel_monitor
from otel_monitor.testing import Telemetry


def django_app():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.djangosite.settings")
    import django
    from django.core.wsgi import get_wsgi_application

    django.setup()
    return get_wsgi_application()


def falcon_app():
    import falcon

    class User:
        def on_get(self, req, resp, uid):
            resp.media = {"id": uid}

    class Boom:
        def on_get(self, req, resp):
            raise ValueError("boom")

    app = falcon.App()
    app.add_route("/users/{uid:int}", User())
    app.add_route("/boom", Boom())
    return app


def bottle_app():
    import bottle

    app = bottle.Bottle()

    @app.get("/users/<uid:int>")
    def user(uid):
        return {"id": uid}

    @app.get("/boom")
    def boom():
        raise ValueError("boom")

    @app.get("/forbidden")
    def forbidden():
        bottle.abort(403, "no")

    return app


def pyramid_app():
    from pyramid.config import Configurator

    def user(request):
        return {"id": int(request.matchdict["uid"])}

    def boom(request):
        raise ValueError("boom")

    with Configurator() as config:
        config.add_route("user", "/users/{uid}")
        config.add_view(user, route_name="user", renderer="json")
        config.add_route("boom", "/boom")
        config.add_view(boom, route_name="boom")
        return config.make_wsgi_app()


# framework: (app factory, route of /users/<n>, error.type of /boom, default service.name)
FRAMEWORKS = {
    "django": (django_app, "users/<int:uid>", "ValueError", "tests.apps.djangosite"),
    "falcon": (falcon_app, "/users/{uid:int}", "ValueError", __name__),
    "bottle": (bottle_app, "/users/<uid:int>", "ValueError", __name__),
    "pyramid": (pyramid_app, "/users/{uid}", "ValueError", __name__),
}


@pytest.fixture(params=sorted(FRAMEWORKS))
def served(request):
    factory, route, error, service = FRAMEWORKS[request.param]
    wrapped = otel_monitor.wrap(factory(), module=__name__, system_metrics=False)
    telemetry = Telemetry(wrapped.monitor)

    def get(path: str) -> int:
        # A PEP 3333 server's start_response: Bottle passes exc_info with its 500 page, which
        # werkzeug's test client would re-raise; an exception out of the app is the server's 500.
        statuses = []
        try:
            body = wrapped(EnvironBuilder(path=path).get_environ(), lambda s, h, e=None: statuses.append(s))
        except Exception:  # noqa: BLE001 - what the server does: a 500 page
            return 500
        b"".join(body)
        body.close()
        return int(statuses[-1][:3])

    yield request.param, get, telemetry, (route, error, service), wrapped
    wrapped.monitor.shutdown(1)


def test_spans_are_named_by_method_and_route_template_with_http_route(served):
    name, get, telemetry, (route, _, _), _ = served
    assert get("/users/42") == 200
    (span,) = telemetry.spans()
    assert span.name == f"GET {route}"
    assert span.attributes["http.route"] == route
    point = telemetry.point("http.server.request.duration")
    assert point.attributes["http.route"] == route and point.attributes["http.response.status_code"] == 200


def test_many_ids_give_one_series_per_route_and_unmatched_urls_have_no_route(served):
    name, get, telemetry, (route, _, _), _ = served
    for uid in range(20):
        assert get(f"/users/{uid}") == 200
    assert get("/no/such/page") == 404
    points = telemetry.points("http.server.request.duration")
    assert sorted((p.attributes.get("http.route", ""), p.count) for p in points) == [("", 1), (route, 20)]
    assert sorted({s.name for s in telemetry.spans()}) == sorted({f"GET {route}", "GET"})


def test_an_exception_in_a_view_is_a_500_with_the_error_type_on_span_and_metric(served):
    name, get, telemetry, (_, error, _), _ = served
    assert get("/boom") == 500
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == error
    assert span.attributes["http.response.status_code"] == 500
    [event] = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == error and event.attributes["exception.message"] == "boom"
    point = telemetry.point("http.server.request.duration")
    assert point.attributes["error.type"] == error and point.attributes["http.response.status_code"] == 500


def test_the_default_service_name_is_the_project_not_the_frameworks_module(served):
    name, _, _, (_, _, service), wrapped = served
    resource = wrapped.monitor.tracer_provider.resource
    assert resource.attributes["service.name"] == service


def test_django_routes_inside_an_include_are_the_full_route():
    wrapped = otel_monitor.wrap(django_app(), system_metrics=False)
    telemetry = Telemetry(wrapped.monitor)
    Client(wrapped).get("/api/users/7").close()
    (span,) = telemetry.spans()
    assert span.name == "GET api/users/<int:uid>"
    wrapped.monitor.shutdown(1)


def test_bottle_abort_is_not_an_application_error():
    wrapped = otel_monitor.wrap(bottle_app(), system_metrics=False)
    telemetry = Telemetry(wrapped.monitor)
    Client(wrapped).get("/forbidden").close()
    (span,) = telemetry.spans()
    assert span.name == "GET /forbidden" and "error.type" not in span.attributes
    wrapped.monitor.shutdown(1)


def test_any_other_framework_can_name_its_route_with_the_public_set_route_hook():
    def app(environ, start_response):
        otel_monitor.set_route(environ, "/items/{id}")
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = otel_monitor.wrap(app, system_metrics=False)
    telemetry = Telemetry(wrapped.monitor)
    Client(wrapped).get("/items/3").close()
    (span,) = telemetry.spans()
    assert span.name == "GET /items/{id}" and span.attributes["http.route"] == "/items/{id}"
    wrapped.monitor.shutdown(1)


def test_wrapping_a_framework_app_twice_installs_its_route_hook_once():
    app = falcon_app()
    first = otel_monitor.wrap(app, system_metrics=False)
    second = otel_monitor.wrap(app, system_metrics=False)
    from otel_monitor.request._frameworks import _FalconRoutes

    assert sum(isinstance(m, _FalconRoutes) for m in app._unprepared_middleware) == 1
    first.monitor.shutdown(1)
    second.monitor.shutdown(1)


def test_a_vendored_bottle_is_recognised_by_its_type_not_its_module_name(tmp_path):
    """pypiserver imports Bottle as pypiserver.bottle_wrapper.bottle: a module of another name."""
    import bottle as installed

    name = "acme_vendor.bottle_wrapper.bottle"
    path = tmp_path / "bottle.py"
    path.write_text(Path(installed.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    vendored = importlib.util.module_from_spec(spec)
    sys.modules[name] = vendored
    try:
        spec.loader.exec_module(vendored)
        app = vendored.Bottle()

        @app.get("/packages/<name>")
        def package(name):
            return name

        @app.get("/boom")
        def boom():
            raise ValueError("boom")

        assert not isinstance(app, installed.Bottle)
        wrapped = otel_monitor.wrap(app, system_metrics=False)
        telemetry = Telemetry(wrapped.monitor)
        Client(wrapped).get("/packages/otel").close()
        body = wrapped(EnvironBuilder(path="/boom").get_environ(), lambda s, h, e=None: None)
        b"".join(body)
        body.close()
        package_span, boom_span = telemetry.spans()
        assert package_span.name == "GET /packages/<name>"
        assert package_span.attributes["http.route"] == "/packages/<name>"
        assert boom_span.attributes["error.type"] == "ValueError"
        wrapped.monitor.shutdown(1)
    finally:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def test_a_pyramid_exception_view_500_carries_the_exception_class():
    from pyramid.config import Configurator
    from pyramid.response import Response

    def broken(request):
        raise KeyError("gone")

    def error_page(exc, request):
        return Response("sorry", status=503)

    with Configurator() as config:
        config.add_route("broken", "/broken/{id}")
        config.add_view(broken, route_name="broken")
        config.add_exception_view(error_page, context=KeyError)
        app = config.make_wsgi_app()
    wrapped = otel_monitor.wrap(app, system_metrics=False)
    telemetry = Telemetry(wrapped.monitor)
    response = Client(wrapped).get("/broken/7")
    assert response.status_code == 503
    response.close()
    (span,) = telemetry.spans()
    assert span.name == "GET /broken/{id}"
    assert span.attributes["error.type"] == "KeyError" and span.attributes["http.response.status_code"] == 503
    wrapped.monitor.shutdown(1)


def test_a_falcon_apps_own_error_handler_still_answers_and_the_class_is_noted():
    import falcon

    class Boom:
        def on_get(self, req, resp):
            raise ValueError("boom")

    def own_handler(req, resp, ex, params):
        resp.status = falcon.HTTP_503
        resp.media = {"sorry": True}

    app = falcon.App()
    app.add_route("/boom", Boom())
    app.add_error_handler(Exception, own_handler)
    wrapped = otel_monitor.wrap(app, system_metrics=False)
    telemetry = Telemetry(wrapped.monitor)
    response = Client(wrapped).get("/boom")
    assert response.status_code == 503 and response.json == {"sorry": True}
    response.close()
    (span,) = telemetry.spans()
    assert span.attributes["error.type"] == "ValueError" and span.attributes["http.response.status_code"] == 503
    wrapped.monitor.shutdown(1)


def test_wrap_names_a_framework_app_after_the_module_it_is_given_not_after_its_caller():
    given = otel_monitor.wrap(bottle_app(), module="shop.web", system_metrics=False)
    unnamed = otel_monitor.wrap(bottle_app(), system_metrics=False)
    try:
        assert given.monitor.tracer_provider.resource.attributes["service.name"] == "shop.web"
        # without module= the framework's own module, never this (the calling) module
        assert unnamed.monitor.tracer_provider.resource.attributes["service.name"] == "bottle"
    finally:
        given.monitor.shutdown(timeout=2)
        unnamed.monitor.shutdown(timeout=2)
