"""Where notifications go: a Slack incoming webhook, an Alertmanager-format webhook, e-mail over SMTP.

Each destination has a ``name`` (``slack``, ``webhook``, ``email``), a masked ``target`` for the
API and logs (a webhook's scheme and host only: the path of a Slack webhook URL *is* its secret),
and ``send(notice)``, which raises :class:`DeliveryError` -- with a message free of secrets --
when the notice did not get through. Sending is the delivery thread's job (:mod:`.delivery`),
never a request's.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from .. import __about__
from ..settings import Settings
from .notices import Notice, alertmanager_payload, email_message, slack_payload

__all__ = [
    "Destination",
    "DeliveryError",
    "HttpDestination",
    "EmailDestination",
    "SmtpConfig",
    "destinations_for",
    "mask_url",
]


class DeliveryError(Exception):
    """A notice did not get through; ``retry`` is False for an answer that will never change (4xx)."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class Destination(Protocol):
    name: str
    #: where it goes, without secrets
    target: str

    def send(self, notice: Notice) -> None: ...


def mask_url(url: str) -> str:
    """``https://hooks.slack.com/***``: the scheme and host, never the path or query (they hold the token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    return f"{parts.scheme}://{host}{port}/***"


class HttpDestination:
    """POSTs ``render(notice)`` as JSON; any 2xx is delivered."""

    def __init__(self, name: str, url: str, render: Callable[[Notice], dict[str, Any]], timeout: float) -> None:
        self.name = name
        self._url = url
        self.target = mask_url(url)
        self._render = render
        self._timeout = timeout

    def send(self, notice: Notice) -> None:
        body = json.dumps(self._render(notice), separators=(",", ":")).encode()
        request = urllib.request.Request(
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"otel_monitor/{__about__.__version__}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            # 408, 429 and 5xx may pass; another 4xx (a revoked Slack hook: 403/404) will not.
            retry = exc.code in (408, 429) or exc.code >= 500
            raise DeliveryError(f"{self.target} answered HTTP {exc.code}", retry=retry) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{self.target} unreachable: {type(reason).__name__}: {_safe(reason)}") from None


def _safe(reason: object) -> str:
    # an OSError's text names the host and port at most; never the URL's path
    return str(getattr(reason, "strerror", None) or reason)[:200]


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str | None
    password: str | None
    #: "auto": STARTTLS when the server offers it; "always": refuse a server that does not; "never"
    starttls: str
    timeout: float
    #: TLS from the first byte (port 465, RFC 8314), no STARTTLS
    implicit_tls: bool = False


#: implicit TLS ("SMTPS", RFC 8314): the connection is TLS from the start, no STARTTLS
SMTPS_PORT = 465


class EmailDestination:
    name = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self.target = f"smtp://{config.host}:{config.port} to {len(config.recipients)} recipient(s)"

    def send(self, notice: Notice) -> None:
        c = self._config
        message = email_message(notice, c.sender, c.recipients)
        try:
            implicit_tls = c.implicit_tls
            smtp_class = smtplib.SMTP_SSL if implicit_tls else smtplib.SMTP
            options: dict[str, Any] = {"context": ssl.create_default_context()} if implicit_tls else {}
            with smtp_class(c.host, c.port, timeout=c.timeout, **options) as smtp:
                smtp.ehlo()
                if implicit_tls:
                    pass  # TLS from the first byte (port 465, RFC 8314)
                elif c.starttls != "never" and smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                elif c.starttls == "always":
                    raise DeliveryError(f"{self.target}: the server does not offer STARTTLS", retry=False)
                if c.username:
                    smtp.login(c.username, c.password or "")
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{self.target}: login refused ({exc.smtp_code})", retry=False) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"{self.target}: the server answered {exc.smtp_code}",
                retry=exc.smtp_code >= 400 and exc.smtp_code < 500,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{self.target}: {type(exc).__name__}: {_safe(exc)}") from None


def destinations_for(settings: Settings) -> list[Destination]:
    """The destinations the settings configure (e-mail needs recipients and a host)."""
    found: list[Destination] = []
    timeout = settings.alerts_timeout_s
    if settings.alerts_slack_webhook_url:
        found.append(HttpDestination("slack", settings.alerts_slack_webhook_url, slack_payload, timeout))
    if settings.alerts_webhook_url:
        found.append(HttpDestination("webhook", settings.alerts_webhook_url, alertmanager_payload, timeout))
    if settings.alerts_email_to and settings.alerts_smtp_host:
        sender = settings.alerts_email_from or f"otel_monitor@{settings.alerts_smtp_host}"
        found.append(
            EmailDestination(
                SmtpConfig(
                    settings.alerts_smtp_host,
                    settings.alerts_smtp_port,
                    sender,
                    tuple(settings.alerts_email_to),
                    settings.alerts_smtp_username,
                    settings.alerts_smtp_password,
                    settings.alerts_smtp_starttls,
                    timeout,
                    implicit_tls=settings.alerts_smtp_port == SMTPS_PORT,
                )
            )
        )
    return found
