"""Route templates (and a default ``service.name``) for Django, Falcon, Bottle and Pyramid apps under ``wrap()``.

``wrap(application)`` calls :func:`install_route_hooks`, which recognises the framework by the
application object's class (a module already imported: nothing is imported here that the app did
not import) and installs one small hook through the framework's public API:

* Django ``WSGIHandler``: its ``get_response`` is wrapped; after it, ``request.resolver_match.route``
  (``users/<int:uid>``, what the stock Django instrumentation reports) is the route, and the
  ``got_request_exception`` signal gives the exception class of a 500;
* Falcon ``App``: a middleware whose ``process_resource`` reads ``req.uri_template``
  (``/users/{uid:int}``), and an error handler for ``Exception`` that notes the exception class
  of a 500 and hands the request to the handler that was there (Falcon's own 500 page);
* Bottle ``Bottle``: a plugin that wraps each route callback with the route's ``rule``
  (``/users/<uid:int>``) and notes an exception the callback raised. Bottle is often vendored
  (pypiserver imports it as ``pypiserver.bottle_wrapper.bottle``), so the app is recognised by
  its class (a ``Bottle`` of a module that has Bottle's ``request`` and ``HTTPResponse``), and the
  plugin uses that module, whatever its name;
* Pyramid ``Router`` (``config.make_wsgi_app()``): subscribers added through a ``Configurator``
  over the app's registry: ``ContextFound`` gives ``request.matched_route.pattern``
  (``/users/{uid}``), ``NewResponse`` the exception an exception view turned into a 5xx. An
  exception no view handles leaves the app: the middleware records it (``error.type``, status 500).

Any other framework (or your own code) can call :func:`set_route` with the matched route template.
Only templates, never raw paths, become span names and ``http.route``, so series stay bounded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._request_path import EXCEPTION_KEY, ROUTE_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

# Django, Falcon, Bottle and Pyramid ship no type hints (pyproject's mypy overrides): their apps,
# requests and events are ``Any`` here, the boundary with those untyped libraries.

__all__ = ["set_route", "install_route_hooks", "default_service_name"]

_INSTALLED = "_otel_monitor_routes"


def set_route(environ: WSGIEnvironment, route: str) -> None:
    """Tell otel_monitor the route template this request matched (e.g. ``"/users/{id}"``).

    Call it from your framework's routing hook, before the response is returned; the span is
    then named ``"GET /users/{id}"`` and the request metrics carry ``http.route``. Pass the
    template, never the raw path: every distinct value is a new metric series.
    """
    environ[ROUTE_KEY] = route


def install_route_hooks(application: WSGIApplication) -> str | None:
    """Install the route hook for ``application``'s framework; the framework's name, or None."""
    for name, matches, install in _ADAPTERS:
        if matches(application):
            if not _installed(application):
                install(application)
                _mark_installed(application)
            return name
    return None


#: apps that take no attribute (Falcon's App has __slots__), held so that their id stays theirs
_INSTALLED_BY_ID: dict[int, object] = {}


def _installed(application: object) -> bool:
    return getattr(application, _INSTALLED, False) or id(application) in _INSTALLED_BY_ID


def _mark_installed(application: object) -> None:
    try:
        setattr(application, _INSTALLED, True)
    except (AttributeError, TypeError):
        _INSTALLED_BY_ID[id(application)] = application


def default_service_name(application: WSGIApplication, caller_module: str | None) -> str | None:
    """A ``service.name`` for a framework app: its project, not the framework's own module.

    Django: the package of the settings module (``mysite.settings`` -> ``mysite``). Falcon,
    Bottle and Pyramid: ``caller_module``, the module ``wrap(app, module=__name__)`` names (the
    script's name when it is ``__main__``). None for anything else, or without a module
    (``wrap()`` keeps its own default).
    """
    framework = next((name for name, matches, _ in _ADAPTERS if matches(application)), None)
    if framework is None:
        return None
    if framework == "django":
        name = _django_project()
        if name:
            return name
    if caller_module == "__main__":
        main = getattr(sys.modules.get("__main__"), "__file__", None)
        return os.path.splitext(os.path.basename(main))[0] if main else None
    return caller_module or None


# -- Django ------------------------------------------------------------------------------------------


def _is_django(application: object) -> bool:
    module = sys.modules.get("django.core.handlers.wsgi")
    return module is not None and isinstance(application, module.WSGIHandler)


def _install_django(handler: Any) -> None:
    from django.core.signals import got_request_exception

    inner = handler.get_response

    def get_response(request: Any) -> Any:
        try:
            return inner(request)
        finally:
            route = getattr(getattr(request, "resolver_match", None), "route", None)
            if route:
                request.environ[ROUTE_KEY] = route

    handler.get_response = get_response
    got_request_exception.connect(_django_exception, dispatch_uid="otel_monitor.route_exception")


def _django_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    # Sent from inside Django's ``except`` block: the exception being handled is the app's.
    exception = sys.exc_info()[1]
    environ = getattr(request, "environ", None)
    if exception is not None and isinstance(environ, dict):
        environ[EXCEPTION_KEY] = exception


def _django_project() -> str | None:
    try:
        from django.conf import settings

        module = settings.SETTINGS_MODULE or os.environ.get("DJANGO_SETTINGS_MODULE")
    except Exception:  # noqa: BLE001 - settings not configured: no opinion
        return None
    if not module:
        return None
    parts = module.split(".")
    if "settings" in parts and parts.index("settings") > 0:
        return ".".join(parts[: parts.index("settings")])
    return ".".join(parts[:-1]) or module


# -- Falcon ------------------------------------------------------------------------------------------


def _is_falcon(application: object) -> bool:
    module = sys.modules.get("falcon")
    app_class = getattr(module, "App", None) if module is not None else None
    return isinstance(app_class, type) and isinstance(application, app_class)


class _FalconRoutes:
    """Falcon middleware: the matched ``uri_template`` is the route."""

    def process_resource(self, req: Any, resp: Any, resource: Any, params: Any) -> None:
        template = getattr(req, "uri_template", None)
        if template:
            req.env[ROUTE_KEY] = template


def _install_falcon(app: Any) -> None:
    app.add_middleware(_FalconRoutes())
    # Falcon turns an unhandled exception into its 500 page and keeps the exception. Our handler
    # for Exception notes it and calls the one registered before (Falcon's default, or the app's
    # own; Falcon has no public lookup, so its handler table is read, with its default method as
    # the fallback).
    handlers = getattr(app, "_error_handlers", None)
    previous = handlers.get(Exception) if isinstance(handlers, dict) else None
    if previous is None:
        previous = getattr(app, "_python_error_handler", None)
    if previous is None:
        return

    def note_exception(req: Any, resp: Any, ex: Exception, params: Any) -> Any:
        env = getattr(req, "env", None)
        if isinstance(env, dict):
            env[EXCEPTION_KEY] = ex
        return previous(req, resp, ex, params)

    app.add_error_handler(Exception, note_exception)


# -- Bottle ------------------------------------------------------------------------------------------


def _bottle_module(application: object) -> ModuleType | None:
    """The Bottle module ``application`` comes from, whatever it is called (Bottle is vendored)."""
    for cls in type(application).__mro__:
        if cls.__name__ != "Bottle":
            continue
        module = sys.modules.get(cls.__module__)
        if (
            module is not None
            and getattr(module, "Bottle", None) is cls
            and isinstance(getattr(module, "HTTPResponse", None), type)
            and hasattr(module, "request")
            and callable(getattr(application, "install", None))
        ):
            return module
    return None


def _is_bottle(application: object) -> bool:
    return _bottle_module(application) is not None


class _BottleRoutes:
    """Bottle plugin (API 2): each route callback notes its rule and any exception it raises."""

    name = "otel_monitor_routes"
    api = 2

    def __init__(self, bottle: ModuleType) -> None:
        self._bottle = bottle

    def apply(self, callback: Callable[..., Any], route: Any) -> Callable[..., Any]:
        rule = route.rule
        request = self._bottle.request
        control_flow = self._bottle.HTTPResponse  # abort() and redirect(): not failures of the app

        def with_route(*args: Any, **kwargs: Any) -> Any:
            environ = request.environ
            environ[ROUTE_KEY] = rule
            try:
                return callback(*args, **kwargs)
            except control_flow:
                raise
            except Exception as exc:
                environ[EXCEPTION_KEY] = exc
                raise

        return with_route


def _install_bottle(app: Any) -> None:
    module = _bottle_module(app)
    if module is not None:
        app.install(_BottleRoutes(module))


# -- Pyramid -----------------------------------------------------------------------------------------


def _is_pyramid(application: object) -> bool:
    module = sys.modules.get("pyramid.router")
    app_class = getattr(module, "Router", None) if module is not None else None
    return isinstance(app_class, type) and isinstance(application, app_class)


def _pyramid_route(event: Any) -> None:
    request = event.request
    pattern = getattr(getattr(request, "matched_route", None), "pattern", None)
    if pattern:
        request.environ[ROUTE_KEY] = pattern


def _pyramid_exception(event: Any) -> None:
    # An exception view rendered this response: its exception is the 5xx's error.type.
    request = event.request
    exception = getattr(request, "exception", None)
    if isinstance(exception, Exception) and getattr(event.response, "status_int", 0) >= 500:
        request.environ[EXCEPTION_KEY] = exception


def _install_pyramid(router: Any) -> None:
    from pyramid.config import Configurator
    from pyramid.events import ContextFound, NewResponse

    config = Configurator(registry=router.registry)
    config.add_subscriber(_pyramid_route, ContextFound)
    config.add_subscriber(_pyramid_exception, NewResponse)
    config.commit()


_ADAPTERS: list[tuple[str, Callable[[Any], bool], Callable[[Any], None]]] = [
    ("django", _is_django, _install_django),
    ("falcon", _is_falcon, _install_falcon),
    ("bottle", _is_bottle, _install_bottle),
    ("pyramid", _is_pyramid, _install_pyramid),
]
