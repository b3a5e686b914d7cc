"""The pre-fork test app (tests/apps/prefork_app.py) served by ASGI servers through WSGI adapters.

``mounted`` is shaped like mlflow's server: a Starlette app with routes of its own, a catch-all
``/{path}`` route behind a mount of the Flask app at ``/``, and the ASGI layer instrumented too
(opentelemetry-instrumentation-asgi), so two instrumentations see every request.
"""

from a2wsgi import WSGIMiddleware as A2WSGIMiddleware
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.applications import Starlette
from starlette.middleware.wsgi import WSGIMiddleware as StarletteWSGIMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from uvicorn.middleware.wsgi import _WSGIMiddleware as UvicornWSGIMiddleware

from tests.apps.prefork_app import app as flask_app

#: a2wsgi, the adapter uvicorn recommends (and uses for --interface wsgi when installed)
a2wsgi_app = A2WSGIMiddleware(flask_app)
#: uvicorn's own (deprecated) WSGI middleware
uvicorn_wsgi_app = UvicornWSGIMiddleware(flask_app)


async def asgi_health(request):
    return PlainTextResponse("asgi ok")


async def catch_all(request):
    return PlainTextResponse("not found by the ASGI app", status_code=404)


mounted = OpenTelemetryMiddleware(
    Starlette(
        routes=[
            Route("/asgi-health", asgi_health),
            Mount("/", StarletteWSGIMiddleware(flask_app)),
            Route("/{path:path}", catch_all),
        ]
    )
)
