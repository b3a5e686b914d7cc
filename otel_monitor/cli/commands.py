"""The ``otel-monitor`` command: ``run``, ``demo`` and ``doctor``.

    otel-monitor run --service-name shop -- gunicorn -w 4 app:app
    otel-monitor demo --traffic 30
    otel-monitor doctor --app app:app

Also available as ``python -m otel_monitor``. Only the standard library's argparse is used.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..__about__ import __version__
from ..settings import FIELDS, SettingsError, config_key, resolve_settings
from .doctor._links import docs_url

if TYPE_CHECKING:
    from flask import Flask

    from ._demo import Phase

__all__ = ["main", "build_parser"]

PROG = "otel-monitor"

TOP_DESCRIPTION = """\
OpenTelemetry monitoring for Flask and WSGI apps: traces, request metrics, system health,
a Prometheus /metrics endpoint and OTLP export.

Settings are the ones of Monitor(app): keyword argument > app.config["OTEL_MONITOR_<NAME>"]
> environment variable (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, ...) > default.
"""

TOP_EPILOG = """\
examples:
  otel-monitor run --service-name shop -- gunicorn -w 4 -b 127.0.0.1:8000 app:app
  otel-monitor run --otlp-endpoint http://127.0.0.1:4318 -- flask --app app run
  otel-monitor demo --traffic 30
  otel-monitor doctor --app app:app --stack-dir .

Run "otel-monitor COMMAND --help" for the options of a command.
exit codes: 0 success, 1 a check failed (doctor) or the demo could not start,
            2 bad usage or a bad setting (the message names it).
"""

RUN_DESCRIPTION = """\
Run COMMAND (any Python WSGI server or script) with every Flask app it creates monitored,
without code changes: the same settings, environment variables and telemetry as Monitor(app).

How: otel-monitor puts its sitecustomize directory first on PYTHONPATH, sets
OTEL_MONITOR_AUTOINSTRUMENT=1 and execs COMMAND (same process id, signals go straight to it).
When the command imports Flask, Flask.__call__ is patched so that each app gets
Monitor().init_app(app) on its first request, after your code has set app.config. An app
that calls Monitor(app) itself is left alone (no double instrumentation). Under gunicorn, uWSGI,
uvicorn or hypercorn every worker builds its own pipeline (with or without --preload), and
OTEL_MONITOR_PROCESS_GROUP (this process's id, which the server keeps) tells the workers they
share one /metrics, one token and one login budget. Another sitecustomize already on
the path still runs.

The options below are handed to the command as the settings' environment variables, so
app.config keys and Monitor(...) arguments in the app still win over them.

Not covered: WSGI apps that are not Flask apps (a plain callable for gunicorn): wrap them in
code with `application = otel_monitor.wrap(application)`. Python started with -I, -E or -S
ignores PYTHONPATH/sitecustomize and is not instrumented.
"""

RUN_EPILOG = """\
examples:
  otel-monitor run -- flask --app app run --port 8000
  otel-monitor run --service-name shop --otlp-endpoint http://127.0.0.1:4318 \\
      -- gunicorn -w 2 -b 127.0.0.1:8000 app:app
  otel-monitor run --sampler-ratio 0.1 --set metrics_path=/internal/metrics -- python app.py
  otel-monitor run --exporter console -- waitress-serve --listen=127.0.0.1:8000 app:app

--set takes a setting name (see "otel-monitor doctor" for the list) or its environment
variable: --set metric_export_interval=5000, --set OTEL_TRACES_SAMPLER=always_on.
"""

DEMO_DESCRIPTION = """\
Serve a small Flask API with monitoring on 127.0.0.1, send it bounded synthetic traffic
that tells a story (version 1.0 healthy; version 2.0 deployed; an incident: a slow inventory
service and failing payments, an alert fires; recovery, the alert resolves) and print the URLs
to open: the app, its Prometheus /metrics and, when present, the analytics API and dashboard
with their login token.
The analytics keep their history in a temporary SQLite file for as long as the demo runs
(MONITORING_DB=path chooses a file of your own, which is kept).

In a checkout of otel_monitor (examples/app.py and otel_monitor/ in the current directory)
the example app is served; elsewhere a built-in copy of it. Ctrl-C or SIGTERM stops it
cleanly; --duration stops it after that many seconds. Settings come from the environment,
e.g. OTEL_EXPORTER_OTLP_ENDPOINT to also export to a collector.
"""

DEMO_EPILOG = """\
examples:
  otel-monitor demo                           # the story's 3 minutes of traffic, then keeps serving
  otel-monitor demo --quick                   # the same story in a minute
  otel-monitor demo --port 8080 --traffic 60
  otel-monitor demo --port 0 --traffic 2 --duration 5    # any free port; exits after 5 s
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 otel-monitor demo
"""

DOCTOR_DESCRIPTION = """\
Show the effective settings (secrets masked) and where each came from (argument, app
config, environment, default), then check:

  * every setting has a usable value (exit code 2 and the setting's name if not);
  * the OTLP endpoint(s) accept TCP connections, when OTLP export is configured (2 s timeout);
  * every metric the Grafana dashboards and the alert rules query is served on /metrics
    (collector-config/grafana/dashboards/*.json and collector-config/alert-rules.yml under
    --stack-dir; a throwaway app with system metrics is built and scraped to find out).

Exit code 0 prints "all checks passed"; 1 means at least one check failed (each problem is
printed); 2 means a setting is bad or the app could not be loaded.
"""

DOCTOR_EPILOG = """\
examples:
  otel-monitor doctor
  otel-monitor doctor --app app:app                  # include app.config of your app
  otel-monitor doctor --app wsgi.py:create_app()     # a file and an app factory
  OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 otel-monitor doctor --stack-dir deploy/
  otel-monitor doctor --set traces_sampler_arg=0.2 --set metrics_port=9464
"""


class CliError(Exception):
    """Bad usage: printed as ``otel-monitor CMD: message`` with exit code 2."""


# -- settings options shared by run and doctor -------------------------------------------------

_FIELDS_BY_NAME = {f.name: f for f in FIELDS}


def setting_name(text: str) -> str:
    """A setting from its name, its environment variable(s) or its app.config key."""
    key = text.strip()
    lowered = key.lower().replace("-", "_")
    if lowered in _FIELDS_BY_NAME:
        return lowered
    for f in FIELDS:
        if key.upper() in f.metadata["env"] or key.upper() == config_key(f.name):
            return f.name
    if key.upper() == "OTEL_EXPORTER_OTLP_TIMEOUT":
        raise CliError("OTEL_EXPORTER_OTLP_TIMEOUT is in milliseconds; use --set otlp_timeout=SECONDS")
    raise CliError(f"unknown setting {text!r}; settings are: " + ", ".join(sorted(_FIELDS_BY_NAME)))


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(f"settings (the same as Monitor(app)'s; see {docs_url('settings.md')})")
    group.add_argument("--service-name", metavar="NAME", help="service.name of the telemetry (OTEL_SERVICE_NAME)")
    group.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export to this OTLP endpoint, e.g. http://127.0.0.1:4318 (OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    group.add_argument(
        "--protocol",
        choices=("http/protobuf", "grpc"),
        help="OTLP protocol (OTEL_EXPORTER_OTLP_PROTOCOL); default http/protobuf",
    )
    group.add_argument(
        "--exporter",
        metavar="LIST",
        help="exporters for traces and metrics: otlp, console, none, comma-separated "
        "(OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER)",
    )
    group.add_argument(
        "--sampler-ratio",
        metavar="RATIO",
        help="keep this share of traces, 0 to 1 (OTEL_TRACES_SAMPLER_ARG; the sampler becomes "
        "parentbased_traceidratio unless OTEL_TRACES_SAMPLER says otherwise)",
    )
    group.add_argument(
        "--metrics-port", metavar="PORT", help="also serve /metrics on this port (OTEL_MONITOR_METRICS_PORT)"
    )
    group.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        type=_name_value,
        metavar="NAME=VALUE",
        help="any setting, by name or environment variable; repeatable",
    )


def settings_from_options(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings the options ask for, as ``{setting name: text}`` (later options win)."""
    environ = os.environ if environ is None else environ
    chosen: dict[str, str] = {}
    if args.service_name is not None:
        chosen["service_name"] = args.service_name
    if args.otlp_endpoint is not None:
        chosen["otlp_endpoint"] = args.otlp_endpoint
    if args.protocol is not None:
        chosen["otlp_protocol"] = args.protocol
    if args.exporter is not None:
        chosen["traces_exporter"] = chosen["metrics_exporter"] = args.exporter
    if args.metrics_port is not None:
        chosen["metrics_port"] = args.metrics_port
    for name, value in args.settings:
        chosen[setting_name(name)] = value
    if args.sampler_ratio is not None:
        chosen["traces_sampler_arg"] = args.sampler_ratio
        if "traces_sampler" not in chosen and not environ.get("OTEL_TRACES_SAMPLER", "").strip():
            chosen["traces_sampler"] = "parentbased_traceidratio"
    return chosen


# -- run ---------------------------------------------------------------------------------------


def run_environment(
    chosen: dict[str, str], environ: Mapping[str, str] | None = None, quiet: bool = False
) -> dict[str, str]:
    """The command's environment: the options as environment variables, PYTHONPATH, the flag."""
    from ._autoinstrument import DIRECTORY

    env = dict(os.environ if environ is None else environ)
    for name, value in chosen.items():
        env[_FIELDS_BY_NAME[name].metadata["env"][0]] = value
    existing = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.abspath(p) != DIRECTORY]
    env["PYTHONPATH"] = os.pathsep.join([DIRECTORY, *existing])
    env["OTEL_MONITOR_AUTOINSTRUMENT"] = "1"
    if quiet:
        env["OTEL_MONITOR_AUTOINSTRUMENT_QUIET"] = "1"
    return env


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError("no command to run; e.g. otel-monitor run -- flask --app app run")
    chosen = settings_from_options(args)
    # Options are checked as arguments (the message names the option's setting), the rest of
    # the environment as the app will read it; a bad value stops here, before the server starts.
    resolve_settings(chosen, environ=os.environ)
    env = run_environment(chosen, quiet=args.quiet)
    # exec keeps our pid: the server's master is this process, and its workers know their group
    env.setdefault("OTEL_MONITOR_PROCESS_GROUP", str(os.getpid()))
    if not args.quiet:
        shown = " ".join(f"{_FIELDS_BY_NAME[n].metadata['env'][0]}={_masked_text(n, v)}" for n, v in chosen.items())
        import shlex

        line = shlex.join(command)
        line = line if len(line) <= 100 else line[:97] + "..."
        print(
            f"{PROG}: monitoring the Flask apps of: {line}" + (f"  [{shown}]" if shown else ""),
            file=sys.stderr,
            flush=True,
        )
    sys.stdout.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"{PROG} run: cannot run {command[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        return 126 if isinstance(exc, PermissionError) else 127
    return 0  # not reached


def _masked_text(name: str, value: str) -> str:
    if _FIELDS_BY_NAME[name].metadata.get("secret"):
        return "***"
    return value if len(value) <= 60 else value[:57] + "..."


# -- demo --------------------------------------------------------------------------------------


def demo_app() -> tuple[Flask, str]:
    """The example app (examples/app.py, installed as otel_monitor.examples.app)."""
    from ..examples.app import app

    return app, "examples/app.py"


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import QUICK_STORY, STORY, demo_alerts, demo_environment, story_seconds, temporary_history

    story = QUICK_STORY if args.quick else STORY
    if args.traffic is None:
        args.traffic = story_seconds(story)
    if args.traffic < 0:
        raise CliError("--traffic must be 0 or more seconds")
    if args.duration is not None and args.duration <= 0:
        raise CliError("--duration must be more than 0 seconds")
    if not 0 <= args.port <= 65535:
        raise CliError("--port must be from 0 to 65535")
    # The history must be set before the example app is imported: its Monitor reads it then.
    with temporary_history() as history, demo_alerts(), demo_environment(story) as deploys:
        return _serve_demo(args, history, story, deploys)


def _serve_demo(args: argparse.Namespace, history: str | None, story: Sequence[Phase], deploys: bool) -> int:
    from ._demo import deploy_args, serve

    app, origin = demo_app()
    from ..examples.app import create_app

    deploy = (lambda version: create_app(service_version=version, **deploy_args(app))) if deploys else None
    traffic, run_seconds = args.traffic, None
    if args.duration is not None:
        traffic = min(traffic, args.duration)
        run_seconds = max(0.0, args.duration - traffic)
    print(
        f"{PROG} demo: serving {origin}"
        + (f" with {traffic:g} s of synthetic traffic" if traffic else "")
        + (f", stopping after {args.duration:g} s" if args.duration is not None else "; Ctrl-C stops it"),
        flush=True,
    )
    if history is not None:
        print(f"history:    {history} (deleted when the demo stops; set MONITORING_DB to keep one)", flush=True)
    try:
        serve(
            app,
            args.host,
            args.port,
            traffic_seconds=traffic,
            run_seconds=run_seconds,
            story=story,
            deploy=deploy,
        )
    except OSError as exc:
        print(
            f"{PROG} demo: cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
            f"(another server on that port? try --port 0 for any free port)",
            file=sys.stderr,
        )
        return 1
    return 0


# -- parser and entry point --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG, description=TOP_DESCRIPTION, epilog=TOP_EPILOG, formatter_class=formatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="cmd", title="commands", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a WSGI server or script with its Flask apps monitored",
        description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG,
        formatter_class=formatter,
        usage=f"{PROG} run [options] -- COMMAND [ARG ...]",
    )
    add_setting_options(run)
    run.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing of our own (by default one line per monitored app, to stderr)",
    )
    run.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="COMMAND",
        help="the command to run, after --: flask run, gunicorn app:app, python app.py, ...",
    )
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser(
        "demo",
        help="serve a demo app with monitoring and synthetic traffic",
        description=DEMO_DESCRIPTION,
        epilog=DEMO_EPILOG,
        formatter_class=formatter,
    )
    demo.add_argument("--port", type=int, default=8000, help="port to serve on; 0 picks a free one (default 8000)")
    demo.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    demo.add_argument(
        "--traffic",
        type=float,
        default=None,
        metavar="SECONDS",
        help="send synthetic traffic for this many seconds, 0 for none (default: the whole story, about 3 minutes)",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="tell the story in a minute (healthy, deploy, incident, recovery)",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds in all (default: run until Ctrl-C)",
    )
    demo.set_defaults(handler=cmd_demo)

    doctor = commands.add_parser(
        "doctor",
        help="show the effective settings and check exporters and dashboards",
        description=DOCTOR_DESCRIPTION,
        epilog=DOCTOR_EPILOG,
        formatter_class=formatter,
    )
    doctor.add_argument(
        "--app",
        metavar="MODULE:ATTR",
        help="your Flask app, to include its app.config: module:app, path/to/app.py:app or "
        "module:create_app() (the current directory is on the import path)",
    )
    doctor.add_argument(
        "--stack-dir",
        metavar="DIR",
        default=None,
        help="directory holding collector-config/ (or collector-config itself); default: the current directory",
    )
    doctor.add_argument(
        "--all",
        action="store_true",
        help="list every setting, not only those that differ from the defaults",
    )
    doctor.add_argument(
        "--skip-metrics-check",
        action="store_true",
        help="do not build a throwaway app to compare its metrics with the dashboards",
    )
    doctor.add_argument(
        "--test-alert",
        action="store_true",
        help=f"send a TEST notification to every alert destination ({docs_url('alerts.md')}) and report each outcome",
    )
    add_setting_options(doctor)
    doctor.set_defaults(handler=_cmd_doctor)
    return parser


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    return run_doctor(args, settings_from_options(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``otel-monitor`` and ``python -m otel_monitor``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except CliError as exc:
        print(f"{PROG} {args.cmd}: {exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"{PROG} {args.cmd}: bad setting: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
