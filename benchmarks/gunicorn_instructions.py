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

``--kernel-share SECONDS`` also serves bare Flask from one gunicorn sync worker outside valgrind,
under ``wrk -t1 -c8`` (as ``run.py``'s rounds), three times, and reads the worker's user and system
CPU time from the kernel: the median ``system / user`` is the kernel's share of a request (accept,
read, write, close), which callgrind does not count and which is the same for every stack. With it,
each stack's row also shows the throughput ratio of a CPU-bound worker with the kernel's time
counted: ``bare * (1 + k) / (stack + bare * k)``, the bare worker's system time expressed in its
own instructions.
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
from collections.abc import Callable

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


def _wait_serving(
    proc: subprocess.Popen[bytes], port: int, path: str, timeout: float, describe: Callable[[], str]
) -> None:
    """Poll until gunicorn answers 200 on ``path``; a RuntimeError with ``describe()`` if it exits or
    does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _get(port, path) == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not serve {path}: {describe()}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop gunicorn (its master, by pid; SIGKILL to its session after ``timeout`` seconds)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


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
        _wait_serving(proc, port, path, 600, lambda: open(log.name).read()[-2000:])
        for _ in range(warm):
            _get(port, path)
        for _ in range(requests):
            status = _get(port, path)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
    finally:
        _stop(proc, 600)
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


def kernel_share(python: str, tree: str, path: str, seconds: int) -> float:
    """``system / user`` CPU time of a bare-Flask gunicorn worker under wrk (see the module doc)."""
    import psutil

    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROMETHEUS_MULTIPROC"))}
    env.update(PYTHONPATH=tree, BENCH_STACK="bare", BENCH_FMD_DIR=tempfile.mkdtemp(prefix="kernel-share-"))
    cmd = [python, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--chdir", _HERE, "--log-level", "warning", "--backlog", "2048", "wsgi:app"]
    proc = subprocess.Popen(cmd, env=env, cwd=_HERE, stdout=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}{path}"
    try:
        _wait_serving(proc, port, path, 60, lambda: "(bare)")
        (worker,) = psutil.Process(proc.pid).children()
        subprocess.run(["wrk", "-t1", "-c8", "-d2s", url], check=True, capture_output=True)
        shares = []
        for _ in range(3):
            before = worker.cpu_times()
            subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", url], check=True, capture_output=True)
            after = worker.cpu_times()
            shares.append((after.system - before.system) / (after.user - before.user))
        print(f"  kernel share (system / user) of a bare worker: {[round(x, 3) for x in shares]}", file=sys.stderr)
        return sorted(shares)[1]
    finally:
        _stop(proc, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--tree", default=os.path.dirname(_HERE))
    parser.add_argument("--stacks", default="bare,otel_monitor_100,pfe")
    parser.add_argument("--path", default="/users/42")
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--requests", default="300,900")
    parser.add_argument("--kernel-share", type=int, default=0, metavar="SECONDS", help="see the module doc")
    args = parser.parse_args()
    share = kernel_share(args.python, args.tree, args.path, args.kernel_share) if args.kernel_share else None
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
        head = "| stack | worker instructions per request | overhead | bare / stack |"
        rule = "| --- | --- | --- | --- |"
        if share is not None:
            head += f" with the kernel's share (k = {share:.3f}) |"
            rule += " --- |"
        print(f"\n{head}\n{rule}")
        for stack, row in results.items():
            n = row["per_request"]
            line = f"| `{stack}` | {n / 1000:,.1f}k | {(n - bare) / 1000:+,.1f}k | {bare / n:.3f} |"
            if share is not None:
                line += f" {bare * (1 + share) / (n + bare * share):.3f} |"
            print(line)


if __name__ == "__main__":
    main()
