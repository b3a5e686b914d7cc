"""The doctor's alerts check: the rules (already valid, or the settings failed), the destinations
(masked), and with ``--test-alert`` one TEST notice to each."""

from __future__ import annotations

from ...settings import Settings
from ._links import docs_url
from ._report import Report

__all__ = ["check_alerts"]


def check_alerts(report: Report, settings: Settings, send_test: bool) -> None:
    """The alert rules (already valid: a bad one failed the settings), the destinations (masked), a test notice."""
    from ...alerts import wiring as alerts

    setup = alerts.setup_for(settings, settings.service_name or "app")
    if alerts.enabled(settings) and not settings.analytics and not settings.sdk_disabled:
        report.warn("alerts are configured but analytics=false: the alerts read the analytics, nothing is evaluated")
    if settings.sdk_disabled or not settings.analytics or not alerts.enabled(settings):
        report.skip(f"alerts are off ({len(setup.rules)} rule(s) would apply; see {docs_url('alerts.md')})")
        if send_test and setup.destinations:
            report.warn("--test-alert: sending anyway to the configured destinations")
        elif send_test:
            report.fail("--test-alert: no alert destination is configured")
            return
        if not send_test:
            return
    else:
        names = ", ".join(r.name for r in setup.rules) or "(none)"
        report.ok(f"{len(setup.rules)} alert rule(s) valid: {names}")
        if not setup.destinations:
            report.warn("alerts are on but no destination is configured: they show only on the dashboard")
        for destination in setup.destinations:
            report.ok(f"alert destination {destination.name}: {destination.target}")
        report.ok(f"alert state: {setup.store.where}")
    if not send_test:
        return
    for result in alerts.send_test_notice(setup):
        if result.error is None:
            report.ok(f"test notification sent to {result.destination} ({result.target})")
        else:
            report.fail(f"test notification to {result.destination} failed: {result.error}")
