"""Links the doctor prints: the documentation is online (``docs/`` is not in the wheel).

The base is the distribution's ``Documentation`` project URL (pyproject's ``[project.urls]``), so an
installed package points where its own metadata says; :data:`DOCS_URL` when the metadata is missing
(a source tree that was never installed).
"""

from __future__ import annotations

import functools
from importlib import metadata

__all__ = ["DOCS_URL", "docs_url"]

#: pyproject's ``Documentation`` URL, used when the installed metadata does not say
DOCS_URL = "https://github.com/otel-monitor/otel_monitor/tree/main/docs"


@functools.cache
def _docs_base() -> str:
    try:
        urls = metadata.metadata("otel_monitor").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return DOCS_URL
    for entry in map(str, urls):
        label, _, url = entry.partition(",")
        if label.strip().lower() == "documentation" and url.strip().startswith("https://"):
            return url.strip().rstrip("/")
    return DOCS_URL


def docs_url(page: str) -> str:
    """The online URL of ``docs/<page>`` (e.g. ``alerts.md``)."""
    return f"{_docs_base()}/{page}"
