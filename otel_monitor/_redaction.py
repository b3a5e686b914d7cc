"""One redaction for every place a request's text can appear.

The request span's attributes and exception event, the analytics' traces list, trace details and
error groups, and exported log records all call the same :class:`Redactor`, so a secret that one
of them hides is hidden by all of them:

* **query strings**: the value of a sensitive parameter becomes ``REDACTED``. A name is compared
  as an application reads it: percent-decoded (``%70assword``), ``+`` as a space, surrounding
  spaces ignored (``password+=``, ``password%20=``), in any case, also inside brackets
  (``user[password]``); parameters are separated by ``&`` or ``;`` (so ``&amp;`` separates too);
* **URLs**: the user information (``scheme://user:pass@``) becomes ``REDACTED:REDACTED@`` (as the
  semantic conventions ask for ``url.full``) and the query is redacted as above;
* **free text** (exception messages, stack traces, status descriptions, log messages): every URL in
  it, ``name=value`` pairs and quoted ``'name': 'value'`` pairs (dict reprs, JSON) whose name is
  sensitive, and ``Authorization:`` / ``Cookie:`` header lines;
* **log records** exported over OTLP (:mod:`otel_monitor.telemetry._log_redaction`): the body as free text, the
  attributes as below;
* **attributes**: a key that names a credential (``*password*``, ``*token*``, ``http.request.header.
  authorization``, ``...cookie``, ...) loses its value; URL-valued and text-valued keys are redacted
  as above.

Redacting is idempotent: redacted text redacts to itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import TypeVar
from urllib.parse import unquote_plus

__all__ = ["REDACTED", "Redactor", "redactor_for", "names_a_secret"]

#: an attribute value: whatever the caller holds (an OpenTelemetry ``AttributeValue``, a JSON value)
_V = TypeVar("_V")

REDACTED = "REDACTED"

#: attribute keys whose values are credentials wherever an instrumentation puts them
_SECRET_KEY = re.compile(
    r"authorization|cookie|password|passwd|passphrase|secret|token|api[_.-]?key|credential|x-amz-security", re.I
)
#: attribute keys holding a URL (or a part of one)
_URL_KEYS = frozenset({"url.full", "http.url", "http.target", "db.connection_string", "url.original"})
#: attribute keys holding free text that may quote a URL, a query or a header
_TEXT_KEYS = frozenset({"exception.message", "exception.stacktrace", "db.statement", "db.query.text"})
#: header names whose values are credentials when they appear as ``Name: value`` lines in text
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

_SEPARATORS = re.compile(r"([&;])")
_BRACKETED = re.compile(r"[^\[\]]+")
#: ``//userinfo@`` of a URL: the authority ends at the first ``/``, ``?`` or ``#``, and its user
#: information at its last ``@`` (a password may hold an unescaped ``@``)
_USERINFO = re.compile(r"//([^/?#\s]*)@")
#: URLs inside free text
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
#: ``name=value``, ``'name': 'value'``, ``"name": "value"`` in free text
_PAIR_IN_TEXT = re.compile(
    r"""(?<![A-Za-z0-9_.%+\-\[\]])(?P<q>["']?)(?P<name>[A-Za-z0-9_.%+\-\[\]]{1,64})(?P=q)(?P<sep>[ \t]*[=:][ \t]*)"""
    r"""(?P<value>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[^\s&;,'"<>(){}\[\]]+)"""
)
#: what may stand between a name and its ``=`` or ``:`` (``]``, a quote, ``+`` or ``%20``, spaces)
_BEFORE_SEPARATOR = r"""(?=[\]\[\"'+%0-9a-f]{0,8}[ \t]*[=:])"""
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.%+-[]")
#: ``Authorization: Bearer ...`` / ``Cookie: a=b; c=d`` header lines in free text
_HEADER_IN_TEXT = re.compile(r"(?i)\b(proxy-authorization|authorization|set-cookie|cookie)([ \t]*:[ \t]*)([^\r\n'\"]+)")


class Redactor:
    """Redacts queries, URLs, free text and attributes; ``sensitive`` names the query parameters."""

    __slots__ = ("sensitive", "_hint")

    def __init__(self, sensitive: Iterable[str]) -> None:
        self.sensitive = frozenset(name.strip().lower() for name in sensitive)
        # Text with none of the names in it (in lower case), and no %-escape, has no pair to redact:
        # one scan for them all spares the pair pattern's work on most stack traces and log lines.
        names = sorted(self.sensitive | _SECRET_HEADERS, key=len, reverse=True)
        alternatives = "|".join(re.escape(name) for name in names) or "(?!)"
        self._hint = re.compile(f"(?:{alternatives}){_BEFORE_SEPARATOR}")

    # -- names -----------------------------------------------------------------------------------

    def is_sensitive(self, name: str) -> bool:
        """Is ``name``, as the application will decode it, one of the sensitive parameters?"""
        sensitive = self.sensitive
        # What the app will see: ``%70assword`` and ``pass+word`` decode, spaces around it go.
        if "%" in name or "+" in name:
            name = unquote_plus(name).strip()
        name = name.lower()
        if name in sensitive:
            return True
        # ``user[password]`` / ``password[]``: the form a framework reads as a nested ``password``.
        return "[" in name and any(part.strip() in sensitive for part in _BRACKETED.findall(name))

    # -- queries and URLs ------------------------------------------------------------------------

    def query(self, query: str) -> str:
        """A query string (no ``?``) with the values of sensitive parameters replaced."""
        if "=" not in query:
            return query
        if ";" in query:
            parts, step = _SEPARATORS.split(query), 2  # the separators kept at the odd indexes
        else:
            parts, step = query.split("&"), 1
        changed = False
        is_sensitive = self.is_sensitive
        for i in range(0, len(parts), step):
            name, sep, _ = parts[i].partition("=")
            if sep and is_sensitive(name):
                parts[i] = name + "=" + REDACTED
                changed = True
        if not changed:
            return query
        return "".join(parts) if step == 2 else "&".join(parts)

    def url(self, url: str) -> str:
        """A URL without its user information and with its query redacted."""
        if "@" in url:
            url = _USERINFO.sub(_redact_userinfo, url)
        head, sep, rest = url.partition("?")
        if not sep:
            return url
        query, hash_sep, fragment = rest.partition("#")
        return head + sep + self.query(query) + hash_sep + fragment

    # -- free text -------------------------------------------------------------------------------

    def text(self, text: str) -> str:
        """Free text (an exception message, a stack trace, a log line) with every secret in it redacted."""
        if "://" in text:
            text = _URL_IN_TEXT.sub(lambda m: self.url(m.group(0)), text)
        lowered = text.lower()
        if ("authorization" in lowered or "cookie" in lowered) and ":" in text:
            text = _HEADER_IN_TEXT.sub(_redact_header, text)
            lowered = text.lower()
        if "=" in text or "':" in text or '":' in text:
            if "%" in text or len(lowered) != len(text):
                # A percent-encoded name (every pair is a candidate), or characters whose lower
                # case is longer (offsets in ``lowered`` would not be offsets in ``text``).
                text = _PAIR_IN_TEXT.sub(self._pair, text)
            else:
                text = self._pairs_near_names(text, lowered)
        return text

    def _pairs_near_names(self, text: str, lowered: str) -> str:
        """The pairs whose name contains a sensitive name, found from those names (one scan in C)
        rather than by trying the pair pattern at every word of a long stack trace."""
        out: list[str] = []
        done = 0
        for hit in self._hint.finditer(lowered):
            start = hit.start()
            while start > done and lowered[start - 1] in _NAME_CHARS:
                start -= 1
            if start > done and text[start - 1] in "'\"":
                start -= 1
            if start < done:
                continue
            match = _PAIR_IN_TEXT.match(text, start)
            if match is None or match.end("name") < hit.end():
                continue
            out.append(text[done:start])
            out.append(self._pair(match))
            done = match.end()
        if not out:
            return text
        out.append(text[done:])
        return "".join(out)

    def _pair(self, match: re.Match[str]) -> str:
        whole: str = match.group(0)
        name: str = match.group("name")
        value: str = match.group("value")
        quoted = bool(match.group("q"))
        if ":" in match.group("sep") and not quoted:
            return whole  # ``Error: x`` is prose; only quoted names (dicts, JSON) pair with ``:``
        lowered = name.lower()
        if not (self.is_sensitive(name) or lowered in _SECRET_HEADERS):
            return whole
        if value[:1] in ("'", '"'):
            redacted = value[0] + REDACTED + value[0]
        else:
            redacted = REDACTED
        if value == redacted:
            return whole
        start = match.start("value") - match.start()
        return whole[:start] + redacted

    # -- attributes ------------------------------------------------------------------------------

    def attribute(self, key: str, value: _V) -> _V | str:
        """One attribute's value as it may be shown or exported."""
        if _SECRET_KEY.search(key):
            return REDACTED
        if isinstance(value, str):
            if key == "url.query":
                return self.query(value)
            if key in _URL_KEYS:
                return self.url(value)
            if key in _TEXT_KEYS:
                return self.text(value)
        return value

    def attributes(self, attributes: Mapping[str, _V] | None) -> dict[str, _V | str]:
        return {key: self.attribute(key, value) for key, value in (attributes or {}).items()}


def names_a_secret(key: str) -> bool:
    """Does an attribute key or header name name a credential (its value is never shown)?"""
    return _SECRET_KEY.search(key) is not None


def _redact_userinfo(match: re.Match[str]) -> str:
    return "//REDACTED:REDACTED@" if ":" in match.group(1) else "//REDACTED@"


def _redact_header(match: re.Match[str]) -> str:
    name: str = match.group(1)
    separator: str = match.group(2)
    return name + separator + REDACTED


@functools.lru_cache(maxsize=32)
def redactor_for(sensitive: tuple[str, ...]) -> Redactor:
    """The shared :class:`Redactor` for a settings' ``sensitive_query_params``."""
    return Redactor(sensitive)
