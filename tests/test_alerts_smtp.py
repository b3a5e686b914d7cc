"""The e-mail destination against a real SMTP server (aiosmtpd on 127.0.0.1): STARTTLS when offered,
refused when required and missing, implicit TLS, login; the password never in an error."""

from __future__ import annotations

import pytest

from otel_monitor.alerts.destinations import DeliveryError, EmailDestination, SmtpConfig
from otel_monitor.alerts.notices import Notice

from .alert_receivers import SmtpReceiver, self_signed_certificate

NOTICE = Notice(kind="test", service="shop", lines=("hello",))


def config(port: int, **extra) -> SmtpConfig:
    values = {
        "host": "127.0.0.1",
        "port": port,
        "sender": "monitor@example.com",
        "recipients": ("ops@example.com",),
        "username": None,
        "password": None,
        "starttls": "auto",
        "timeout": 10.0,
    }
    values.update(extra)
    return SmtpConfig(**values)


@pytest.fixture
def certificate(tmp_path, monkeypatch):
    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key


def test_a_server_without_starttls_gets_the_mail_in_clear_unless_starttls_is_required():
    server = SmtpReceiver()
    try:
        EmailDestination(config(server.port)).send(NOTICE)
        assert [m["Subject"] for m in server.messages] == ["[TEST] notification from otel_monitor (shop)"]
        assert server.tls_used == [False]
        with pytest.raises(DeliveryError, match="does not offer STARTTLS") as refused:
            EmailDestination(config(server.port, starttls="always")).send(NOTICE)
        assert refused.value.retry is False
        assert len(server.messages) == 1
    finally:
        server.close()


def test_implicit_tls_speaks_tls_from_the_first_byte(certificate):
    server = SmtpReceiver(tls=certificate, implicit=True)
    try:
        EmailDestination(config(server.port, implicit_tls=True)).send(NOTICE)
        assert server.tls_used == [True]
    finally:
        server.close()


def test_a_certificate_the_client_does_not_trust_fails_the_delivery(tmp_path):
    cert, key = self_signed_certificate(tmp_path)  # SSL_CERT_FILE not set: not trusted
    server = SmtpReceiver(tls=(cert, key))
    try:
        with pytest.raises(DeliveryError, match="SSLCertVerificationError"):
            EmailDestination(config(server.port)).send(NOTICE)
        assert server.messages == []
    finally:
        server.close()


def test_a_refused_login_is_final_and_never_shows_the_password(certificate):
    server = SmtpReceiver(tls=certificate)  # aiosmtpd without an authenticator refuses AUTH
    try:
        with pytest.raises(DeliveryError) as refused:
            EmailDestination(config(server.port, username="alerts", password="hunter2-secret")).send(NOTICE)
        assert "hunter2-secret" not in str(refused.value)
        assert server.messages == []
    finally:
        server.close()
