"""Instructions per request in a gunicorn sync worker, by thread, under valgrind's callgrind.

``run.py``'s gunicorn + wrk rounds measure throughput, which on a shared VM moves by ±50 % between
A/A rounds; this counts what the worker executes per request, HTTP parsing and socket handling
included, which the machine's noise does not move. gunicorn (one sync worker) runs under
callgrind, which follows its fork into the worker; a client outside valgrind sends the requests one
connection each (the sync worker closes every connection, as under wrk). Two runs with two request
counts, and the difference per request (start-up, warm-up and exit cancel out)::

    python benchmarks/gunicorn_instructions.py --stacks bare,otel_monitor_100,pfe --requests 300,900

For each stack it prints the worker's threads and ``bare / stack``: the throughput ratio a
CPU-bound worker would reach if each instruction cost the same. The kernel's share of a request
(accept, read, write, close: the same for every stack) is not counted, so the ratio is a lower
bound of the CPU-bound one. All of the per-request work is on the worker's main thread (callgrind's
thread 1): the batch span processor's batch is larger than the run, so it exports nothing during
it, and the exiting worker exports every queued span on its main thread
(gunicorn_instructions_conf.py), once per run like its start-up. Background threads that wake on a
clock (the system gauges, the analytics' tick) do work per second, not per request, and valgrind
slows the process about 50-fold: they are listed apart and left out of the ratio.

OTLP goes to a local sink, as ``run.py --otel-monitor-export otlp`` does.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

from request_instructions import _SINK  # noqa: E402 - after the sys.path set-up above

#: the thread that does all of the per-request work: the worker's main thread (callgrind's thread 1)
_PER_REQUEST = ("MainThread",)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def measure(python: str, tree: str, stack: str, path: str, requests: int, warm: int, sink: str) -> dict[str, int]:
    """Instructions of the worker's threads (by name) for one run of ``requests`` requests."""
    out = tempfile.mkdtemp(prefix="callgrind-gunicorn-")
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROMETHEUS_MULTIPROC"))}
    env.update(
        PYTHONPATH=tree,
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        BENCH_STACK=stack,
        BENCH_FMD_DIR=out,
        BENCH_OTEL_MONITOR_EXPORT="otlp",
        BENCH_OTLP_SINK=sink,
        OTEL_BSP_SCHEDULE_DELAY="600000",
        # no export during the run: the exiting worker exports every span on its main thread
        OTEL_BSP_MAX_QUEUE_SIZE="100000",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="100000",
        BENCH_THREAD_NAMES=os.path.join(out, "threads.json"),
    )
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--separate-threads=yes",
        f"--callgrind-out-file={out}/cg.out.%p",
        python,
        "-m",
        "gunicorn",
        "--workers",
        "1",
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        _HERE,
        "--timeout",
        "900",
        "--graceful-timeout",
        "300",
        "--log-level",
        "warning",
        "--config",
        os.path.join(_HERE, "gunicorn_instructions_conf.py"),
        "wsgi:app",
    ]
    log = open(os.path.join(out, "gunicorn.log"), "w")
    proc = subprocess.Popen(cmd, env=env, cwd=_HERE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if _get(port, path) == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not serve {path}: {open(log.name).read()[-2000:]}")
            time.sleep(0.5)
        for _ in range(warm):
            _get(port, path)
        for _ in range(requests):
            status = _get(port, path)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    with open(os.path.join(out, "threads.json")) as fh:
        names: list[str] = json.load(fh)
    # the worker is the process that wrote the thread names; its files are cg.out.<pid>-<thread>
    worker = int(names[0])
    counts: dict[str, int] = {}
    for name in glob.glob(f"{out}/cg.out.{worker}-*"):
        thread = int(name.rsplit("-", 1)[1])
        with open(name) as fh:
            match = re.search(r"^(?:summary|totals): (\d+)", fh.read(), re.M)
        label = names[thread] if 0 < thread < len(names) else f"thread {thread}"
        counts[label] = counts.get(label, 0) + (int(match.group(1)) if match else 0)
    shutil.rmtree(out, ignore_errors=True)
    print(f"  {stack} {requests} requests: threads {names[1:]}", file=sys.stderr)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--tree", default=os.path.dirname(_HERE))
    parser.add_argument("--stacks", default="bare,otel_monitor_100,pfe")
    parser.add_argument("--path", default="/users/42")
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--requests", default="300,900")
    args = parser.parse_args()
    low, high = (int(n) for n in args.requests.split(","))
    sink_proc = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
    results = {}
    try:
        assert sink_proc.stdout is not None
        sink = f"http://127.0.0.1:{sink_proc.stdout.readline().strip()}"
        for stack in args.stacks.split(","):
            a = measure(args.python, args.tree, stack, args.path, low, args.warm, sink)
            b = measure(args.python, args.tree, stack, args.path, high, args.warm, sink)
            per = {label: (b.get(label, 0) - a.get(label, 0)) / (high - low) for label in sorted(set(a) | set(b))}
            per_request = sum(v for label, v in per.items() if label.startswith(_PER_REQUEST))
            results[stack] = {"per_thread": per, "per_request": per_request}
            print(json.dumps({"stack": stack, "path": args.path, **results[stack]}), flush=True)
    finally:
        sink_proc.terminate()
        sink_proc.wait()
    bare = results.get("bare", {}).get("per_request")
    if bare:
        print("\n| stack | worker instructions per request | overhead | bare / stack |\n| --- | --- | --- | --- |")
        for stack, row in results.items():
            n = row["per_request"]
            print(f"| `{stack}` | {n / 1000:,.1f}k | {(n - bare) / 1000:+,.1f}k | {bare / n:.3f} |")


if __name__ == "__main__":
    main()
