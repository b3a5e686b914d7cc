"""Typed seams (issue 27): ``mypy --strict`` is the package's type check, and no function of ours
takes or returns a bare ``Any`` except where it meets an untyped third-party object.

mypy cannot tell the second rule: ``Any`` is a valid type to it. These tests read the package's
source (one ``ast`` pass, no import) and name every function whose parameter or return is ``Any``
(alone, or in a union such as ``Any | None``), so a new one fails here until it gets a real type
or an entry below that says which library's object it is.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "otel_monitor"

_FRAMEWORK = "an object of a framework without type hints (Django, Falcon, Bottle, Pyramid: pyproject's overrides)"
_SDK_KWARGS = "overrides the SDK's MetricExporter method (its **kwargs are untyped)"
_USER_APP = "the user's application, of any framework (doctor reads it with getattr)"
_SYSTEM_VALUES = "overrides a method of dict[str, Any], the system gauges' map (SystemValues)"
#: ``module:qualified.name(parameter)`` -> why ``Any`` is honest there: the boundary with an untyped library
ALLOWED: dict[str, str] = {
    "otel_monitor.request._frameworks:_install_django(handler)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_install_django.<locals>.get_response(request)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_install_django.<locals>.get_response(return)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_django_exception(sender)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_django_exception(request)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_django_exception(kwargs)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_FalconRoutes.process_resource(req)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_FalconRoutes.process_resource(resp)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_FalconRoutes.process_resource(resource)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_FalconRoutes.process_resource(params)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_install_falcon(app)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_install_falcon.<locals>.note_exception(req)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_install_falcon.<locals>.note_exception(resp)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_install_falcon.<locals>.note_exception(params)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_install_falcon.<locals>.note_exception(return)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_BottleRoutes.apply(route)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_BottleRoutes.apply.<locals>.with_route(args)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_BottleRoutes.apply.<locals>.with_route(kwargs)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_BottleRoutes.apply.<locals>.with_route(return)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_install_bottle(app)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_pyramid_route(event)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_pyramid_exception(event)": _FRAMEWORK,
    "otel_monitor.request._frameworks:_install_pyramid(router)": _FRAMEWORK,
    "otel_monitor.testing:Telemetry.point(return)": (
        "an SDK data point of whichever kind the metric has (number, histogram, ...: their fields differ)"
    ),
    "otel_monitor.testing:closing_client.<locals>._ClosingClient.open(args)": "overrides FlaskClient.open(*args)",
    "otel_monitor.testing:closing_client.<locals>._ClosingClient.open(kwargs)": "overrides FlaskClient.open(**kwargs)",
    "otel_monitor.telemetry._export_accounting:StatusMetricExporter.export(kwargs)": _SDK_KWARGS,
    "otel_monitor.telemetry._export_accounting:StatusMetricExporter.shutdown(kwargs)": _SDK_KWARGS,
    "otel_monitor.telemetry._export_session:ExportSession.send(kwargs)": "overrides requests.Session.send(**kwargs)",
    "otel_monitor.cli.doctor._config:load_app(return)": _USER_APP,
    "otel_monitor.cli.doctor._config:effective_settings(app)": _USER_APP,
    "otel_monitor.analytics.prometheus_source:_LazySystem.get(default)": _SYSTEM_VALUES,
    "otel_monitor.analytics.prometheus_source:_LazySystem.get(return)": _SYSTEM_VALUES,
    "otel_monitor.analytics.prometheus_source:_LazySystem.__getitem__(return)": _SYSTEM_VALUES,
}


def _is_any(annotation: ast.expr | None) -> bool:
    """``Any``, ``typing.Any``, ``"Any"``, or a union with one of them (``Any | None``, ``Optional[Any]``)."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return False
    if isinstance(annotation, ast.Name):
        return annotation.id == "Any"
    if isinstance(annotation, ast.Attribute):
        return annotation.attr == "Any"
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _is_any(annotation.left) or _is_any(annotation.right)
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value).split(".")[-1] in ("Optional", "Union"):
        inner = annotation.slice
        return any(_is_any(e) for e in (inner.elts if isinstance(inner, ast.Tuple) else [inner]))
    return False


def any_in_signatures(source: str, module: str) -> Iterator[str]:
    """``module:qualified.name(parameter)`` (or ``(return)``) of every ``Any`` in a function signature."""

    def visit(node: ast.AST, prefix: str) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                a = child.args
                params = [*a.posonlyargs, *a.args, *filter(None, [a.vararg]), *a.kwonlyargs, *filter(None, [a.kwarg])]
                yield from (f"{module}:{name}({p.arg})" for p in params if _is_any(p.annotation))
                if _is_any(child.returns):
                    yield f"{module}:{name}(return)"
                yield from visit(child, name + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, prefix + child.name + ".")
            else:
                yield from visit(child, prefix)

    yield from visit(ast.parse(source), "")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_sites() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if "__pycache__" not in path.parts:
            found.extend(any_in_signatures(path.read_text(encoding="utf-8"), module))
    return found


def test_the_finder_names_each_any_in_a_signature_and_nothing_else():
    source = """
from typing import Any, Optional
import typing

def plain(a: Any, b: int, *rest: Any, c: "Any | None" = None, **kw: typing.Any) -> Any: ...
def nested(data: dict[str, Any], items: list[Any]) -> Optional[Any]:
    def inner(x: object) -> Any | None: ...
class C:
    def method(self, value: Any) -> int: ...
    async def later(self) -> "Any": ...
"""
    assert list(any_in_signatures(source, "m")) == [
        "m:plain(a)",
        "m:plain(rest)",
        "m:plain(c)",
        "m:plain(kw)",
        "m:plain(return)",
        "m:nested(return)",
        "m:nested.<locals>.inner(return)",
        "m:C.method(value)",
        "m:C.later(return)",
    ]


def test_no_function_of_ours_takes_or_returns_any_except_at_an_untyped_library():
    unexplained = [site for site in _package_sites() if site not in ALLOWED]
    assert unexplained == [], "give these a real type (or a Protocol); Any only for an untyped library's object"


def test_every_allowed_any_is_still_there():
    sites = set(_package_sites())
    assert [site for site in ALLOWED if site not in sites] == []


def test_mypy_runs_strict_on_the_whole_package_with_no_module_relaxed():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert config["strict"] is True and config["files"] == ["otel_monitor"]
    strict_flags = {
        "disallow_any_generics",
        "warn_return_any",
        "disallow_untyped_calls",
        "disallow_untyped_defs",
        "disallow_incomplete_defs",
        "disallow_untyped_decorators",
        "check_untyped_defs",
        "disallow_subclassing_any",
        "strict",
    }
    relaxed = set()
    for override in config.get("overrides", []):
        if any(override.get(flag) is False for flag in strict_flags):
            modules = override["module"]
            relaxed.update([modules] if isinstance(modules, str) else modules)
    assert relaxed == set()
