"""The doctor's settings: the app it is pointed at, the settings it would run with (and where each
comes from), the start-up checks, and the table that shows them (secrets masked)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ...settings import FIELDS, Settings, resolve_settings

__all__ = ["load_app", "effective_settings", "startup_checks", "shown_settings", "settings_table"]


def load_app(spec: str) -> Any:
    """``module:attr``, ``path/to/file.py:attr`` or ``module:factory()``; attr defaults to app."""
    import importlib
    import importlib.util

    target, _, attr = spec.partition(":")
    attr = attr.strip() or "app"
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise LookupError(f"no such file: {target}")
        sys.path.insert(0, str(path.parent))
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:  # a file Python cannot import (no .py)
            raise LookupError(f"not a Python module: {target}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    call = attr.endswith("()")
    obj = getattr(module, attr[:-2] if call else attr, None)
    if obj is None:
        raise LookupError(f"{target} has no attribute {attr[:-2] if call else attr!r}")
    return obj() if call else obj


def effective_settings(app: Any, chosen: dict[str, str]) -> Settings:
    if app is None:
        return resolve_settings(chosen)
    extensions = getattr(app, "extensions", None)
    if isinstance(extensions, dict):
        own = extensions.get("otel_monitor")
        kwargs = {**(getattr(own, "_kwargs", None) or {}), **chosen}
        return resolve_settings(kwargs, app.config, defaults={"service_name": app.name})
    if callable(app):
        # A plain WSGI callable (loaded with monitoring disabled, wrap() hands it back unwrapped):
        # its settings are the environment's; arguments given to wrap() in code are not visible.
        from ...monitor import _wsgi_name

        monitor = getattr(app, "otel_monitor", None)
        kwargs = {**(getattr(monitor, "_kwargs", None) or {}), **chosen}
        return resolve_settings(kwargs, defaults={"service_name": _wsgi_name(app)})
    raise LookupError(f"{app!r} is neither a Flask app nor a WSGI callable")


def startup_checks(settings: Settings) -> None:
    """The checks ``Monitor(app)`` runs after resolving the settings, so doctor fails where start-up would."""
    if settings.sdk_disabled or not settings.analytics:
        return  # start-up skips them too: nothing is mounted
    from ...analytics.auth import validate_settings

    validate_settings(settings)


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, dict):
        text = ",".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    elif isinstance(value, (tuple, list)):
        text = ",".join(str(v) for v in value) or "(none)"
    else:
        text = str(value)
    return text if len(text) <= 48 else text[:45] + "..."


#: shown even at its default: which service the rest of the report is about
_ALWAYS_SHOWN = ("service_name",)


def shown_settings(settings: Settings, show_all: bool) -> list[str]:
    """The settings the table lists: all of them, or those not at their default (and the service's name)."""
    return [f.name for f in FIELDS if show_all or f.name in _ALWAYS_SHOWN or settings.source_of(f.name) != "default"]


def settings_table(settings: Settings, app_given: bool, show_all: bool = True) -> list[str]:
    masked = settings.masked()
    rows = [("SETTING", "VALUE", "SOURCE")]
    names = set(shown_settings(settings, show_all))
    for f in FIELDS:
        if f.name not in names:
            continue
        value = _text(masked[f.name])
        if f.name == "service_name" and masked[f.name] is None and not app_given:
            value = "(the Flask app's import name)"
        elif f.name in ("traces_exporter", "metrics_exporter") and masked[f.name] is None:
            value = "(otlp if an endpoint is set)"
        rows.append((f.name, value, settings.source_of(f.name)))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [f"  {name:<{widths[0]}}  {value:<{widths[1]}}  {source}".rstrip() for name, value, source in rows]
