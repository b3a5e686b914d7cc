"""Alerts and reports without a server: rules evaluated in the app, Slack, e-mail, webhooks, a digest.

Usage: set a destination (``alerts_slack_webhook_url``, ``alerts_webhook_url``, or
``alerts_email_to`` + ``alerts_smtp_host``) and the default rules page on a sustained breach;
add rules with ``alerts_rules``. See ``docs/alerts.md``.

The modules, each with one job:

* :mod:`.rules` -- the rules, their defaults and validation;
* :mod:`.evaluate` -- what a rule measures, from the analytics' snapshots;
* :mod:`.state` -- pending, firing, resolved, notified: the state machine;
* :mod:`.store` -- the state across restarts, and the one evaluating process of a group;
* :mod:`.silences`, :mod:`.digest` -- silences; the scheduled report;
* :mod:`.notices`, :mod:`.destinations`, :mod:`.delivery` -- the messages, where they go, and
  the background thread that sends them with retries;
* :mod:`.engine` -- the evaluation tick; :mod:`.views` -- the JSON endpoints;
* :mod:`.schedule` -- the digest's schedule (read by the settings);
* :mod:`.wiring` -- the alerts set up for a monitor (called by :mod:`otel_monitor.monitor` and the doctor).

May import: the analytics' summaries and reports (the alerts read them), :mod:`otel_monitor.settings`,
:mod:`otel_monitor.prefork`, :mod:`otel_monitor._safe_log`, the telemetry's types. The analytics never
import the alerts; :mod:`.rules` and :mod:`.schedule` import nothing of the package (the settings
validate with them).
"""
