"""What a notification says, in each destination's own format.

A :class:`Notice` is one message: FIRING (new or repeated alerts) or RESOLVED, with every alert
of that status found at one evaluation (simultaneous alerts are grouped into one message), or a
report (the digest) or a test. It renders as

* :func:`slack_payload`: Slack's incoming-webhook JSON (``text`` plus ``blocks``; Mattermost and
  Rocket.Chat accept the same ``text``);
* :func:`alertmanager_payload`: Alertmanager's webhook payload (``version: "4"``), so receivers
  written for Alertmanager work unchanged;
* :func:`email_message`: a plain-text e-mail whose subject starts with ``[FIRING:n]`` or
  ``[RESOLVED]``, as Alertmanager's do.

Every text starts with FIRING or RESOLVED (or REPORT, TEST). User-controlled texts (rule names,
routes, labels) are escaped for Slack's mrkdwn; nothing here knows a secret.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any, Literal

__all__ = ["AlertItem", "Notice", "slack_payload", "alertmanager_payload", "email_message", "fingerprint", "iso"]

Kind = Literal["firing", "resolved", "report", "test"]
RECEIVER = "otel_monitor"
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing


def iso(t: float | None) -> str:
    if t is None:
        return _ZERO_TIME
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex-digit id of an alert's labels (Alertmanager's is a hash of them too)."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AlertItem:
    """One alert in a notice."""

    rule: str
    status: Literal["firing", "resolved"]
    value: float | None
    threshold: float
    op: str
    metric: str
    severity: str
    labels: dict[str, str]
    summary: str
    starts_at: float
    ends_at: float | None
    dashboard_url: str
    trace_url: str | None = None
    route: str | None = None
    method: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def line(self) -> str:
        """``checkout slow: p95_ms 812 > 500 on GET /checkout``"""
        where = ""
        if self.route:
            where = f" on {self.method + ' ' if self.method else ''}{self.route}"
        value = "no data" if self.value is None else _number(self.value)
        return f"{self.rule}: {self.metric} {value} {self.op} {_number(self.threshold)}{where}"


@dataclass(frozen=True)
class Notice:
    kind: Kind
    service: str
    alerts: tuple[AlertItem, ...] = ()
    #: reports and tests: the title and body lines
    title: str = ""
    lines: tuple[str, ...] = ()
    dashboard_url: str = ""
    created: float = 0.0

    @property
    def headline(self) -> str:
        if self.kind == "firing":
            names = ", ".join(a.rule for a in self.alerts)
            return f"FIRING:{len(self.alerts)} {names} ({self.service})"
        if self.kind == "resolved":
            names = ", ".join(a.rule for a in self.alerts)
            return f"RESOLVED {names} ({self.service})"
        if self.kind == "report":
            return f"REPORT {self.title} ({self.service})"
        return f"TEST notification from otel_monitor ({self.service})"

    def body_lines(self) -> list[str]:
        lines: list[str] = []
        for alert in self.alerts:
            lines.append(("FIRING " if alert.status == "firing" else "RESOLVED ") + alert.line())
            if alert.summary:
                lines.append(f"  {alert.summary}")
            lines.append(
                f"  since {iso(alert.starts_at)}" + (f", resolved {iso(alert.ends_at)}" if alert.ends_at else "")
            )
            lines.append(f"  dashboard: {alert.dashboard_url}")
            if alert.trace_url:
                lines.append(f"  trace: {alert.trace_url}")
        lines.extend(self.lines)
        if self.kind in ("report", "test") and self.dashboard_url:
            lines.append(f"dashboard: {self.dashboard_url}")
        return lines

    def text(self) -> str:
        """The plain text: the headline first, then one block per alert."""
        return "\n".join([self.headline, *self.body_lines()])


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if not float(value).is_integer() else str(int(value))


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped (a rule name cannot inject a link or a mention)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    return f"<{_mrkdwn(url).replace('|', '%7C')}|{_mrkdwn(label)}>"


def slack_payload(notice: Notice) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: ``text`` (the fallback and the notification) and ``blocks``."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notice.headline[:150], "emoji": False}}
    ]
    for alert in notice.alerts:
        parts = [f"*{'FIRING' if alert.status == 'firing' else 'RESOLVED'}* {_mrkdwn(alert.line())}"]
        if alert.summary:
            parts.append(_mrkdwn(alert.summary))
        links = [_link(alert.dashboard_url, "dashboard")]
        if alert.trace_url:
            links.append(_link(alert.trace_url, "trace"))
        parts.append(" · ".join(links))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(parts)[:3000]}})
    if notice.lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn("\n".join(notice.lines))[:3000]}})
    if notice.kind in ("report", "test") and notice.dashboard_url:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _link(notice.dashboard_url, "dashboard")}]}
        )
    return {"text": _mrkdwn(notice.text())[:3000], "blocks": blocks[:50]}


def alertmanager_payload(notice: Notice) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) for a FIRING or RESOLVED notice (reports: their alerts empty)."""
    status = "firing" if notice.kind in ("firing", "test") else "resolved"
    alerts: list[dict[str, Any]] = [
        {
            "status": a.status,
            "labels": {"alertname": a.rule, "severity": a.severity, "service": notice.service, **a.labels},
            "annotations": {
                "summary": a.line(),
                "description": a.summary,
                "value": "" if a.value is None else _number(a.value),
                "threshold": _number(a.threshold),
                **({"trace_url": a.trace_url} if a.trace_url else {}),
            },
            "startsAt": iso(a.starts_at),
            "endsAt": iso(a.ends_at),
            "generatorURL": a.dashboard_url,
            "fingerprint": a.fingerprint,
        }
        for a in notice.alerts
    ]
    common_labels = _common([a["labels"] for a in alerts]) if alerts else {"service": notice.service}
    common_annotations = _common([a["annotations"] for a in alerts]) if alerts else {}
    if notice.kind in ("report", "test"):
        common_annotations = {"summary": notice.headline, "description": "\n".join(notice.body_lines())}
        common_labels = {"alertname": "otel_monitor " + notice.kind, "service": notice.service}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{service="{notice.service}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": RECEIVER,
        "groupLabels": {"service": notice.service},
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": notice.dashboard_url,
        "alerts": alerts,
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def email_message(notice: Notice, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    """A plain-text e-mail; the subject starts with ``[FIRING:n]``, ``[RESOLVED]``, ``[REPORT]`` or ``[TEST]``."""
    tag = {
        "firing": f"[FIRING:{len(notice.alerts)}]",
        "resolved": "[RESOLVED]",
        "report": "[REPORT]",
        "test": "[TEST]",
    }[notice.kind]
    rest = notice.headline.split(" ", 1)[1] if " " in notice.headline else notice.headline
    message = EmailMessage()
    message["Subject"] = f"{tag} {rest}"[:200].replace("\n", " ").replace("\r", " ")
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message.set_content(notice.text() + "\n")
    return message
