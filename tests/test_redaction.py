"""Query redaction compares the name the app will read: percent-decoded, any case, also in brackets."""

from __future__ import annotations

import pytest

from otel_monitor._request_path import _redact_query
from otel_monitor.settings import resolve_settings

DEFAULT = frozenset(resolve_settings({}).sensitive_query_params)


@pytest.mark.parametrize(
    "query, redacted",
    [
        ("password=s3cret&x=1", "password=REDACTED&x=1"),
        ("Password=s3cret", "Password=REDACTED"),
        ("%70assword=s3cret", "%70assword=REDACTED"),  # percent-encoded name
        ("pass%77ord=s3cret", "pass%77ord=REDACTED"),
        ("PASS%57ORD=s3cret", "PASS%57ORD=REDACTED"),
        ("client%5Fsecret=s3cret", "client%5Fsecret=REDACTED"),
        ("x-api-key=s3cret", "x-api-key=REDACTED"),
        ("password[]=s3cret", "password[]=REDACTED"),
        ("user[password]=s3cret", "user[password]=REDACTED"),
        ("user%5Bpassword%5D=s3cret", "user%5Bpassword%5D=REDACTED"),
        ("page=2&sort=name", "page=2&sort=name"),
        ("passwordless=1", "passwordless=1"),  # a different name stays
        ("%zz=1&%=2", "%zz=1&%=2"),  # malformed escapes are just names
    ],
)
def test_sensitive_names_are_matched_as_the_app_decodes_them(query, redacted):
    assert _redact_query(query, DEFAULT) == redacted


@pytest.mark.parametrize(
    "name",
    [
        "client_secret",
        "refresh_token",
        "id_token",
        "access_token",
        "access-token",
        "auth_token",
        "private_token",
        "jwt",
        "x-api-key",
        "api-key",
        "passphrase",
        "credentials",
        "client_assertion",
        "x-amz-signature",
        "x-amz-security-token",
        "x-goog-signature",
    ],
)
def test_the_default_list_covers_common_oauth_oidc_and_signed_url_secrets(name):
    assert _redact_query(f"{name}=s3cret", DEFAULT) == f"{name}=REDACTED"


def test_the_list_stays_configurable_and_replaces_the_defaults():
    settings = resolve_settings({"sensitive_query_params": "Internal_Code"})
    names = frozenset(settings.sensitive_query_params)
    assert _redact_query("internal%5Fcode=1&password=2", names) == "internal%5Fcode=REDACTED&password=2"
