"""Instructions per request, by thread, under valgrind's callgrind: a measure the machine's noise does not move.

Wall and CPU time on a shared VM move by tens of µs between runs; instruction counts of a fixed
number of requests in one process do not. Run it twice per tree, with two request counts, and
take the difference (start-up, warm-up and exit cancel out)::

    python benchmarks/request_instructions.py --python /abs/.venv/bin/python --tree /abs/checkout \\
        --stack otel_monitor_100 --path /users/42 --requests 500,1500

It prints, for each thread callgrind saw, the instructions per request of the difference
(``(I(1500) - I(500)) / 1000``): thread 1 is the request thread; the batch span processor's
export thread and the other background threads are listed by their Python names. OTLP goes to a
local sink in a separate (untraced) process, as ``run.py --otel-monitor-export otlp`` does; the
batch span processor exports full batches only (``OTEL_BSP_SCHEDULE_DELAY`` 600 s), as at the
benchmark's request rates.

``--inner`` is the command the script runs under valgrind (one count).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))

_SINK = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def inner(stack: str, path: str, warm: int, requests: int) -> None:
    """Warm up, flush, serve ``requests`` requests, flush; print the threads in creation order."""
    sys.path.insert(0, _HERE)
    from apps import build_app
    from worker import Caller, make_environ

    app = build_app(stack)
    caller = Caller(app)
    environ = make_environ(path)
    for _ in range(warm):
        caller.once(environ)
    _flush(app)
    for _ in range(requests):
        caller.once(environ)
    _flush(app)
    threads = sorted((t.native_id or 0, t.name) for t in threading.enumerate())
    print("THREADS " + json.dumps([name for _, name in threads]), flush=True)


def _flush(app: object) -> None:
    monitor = getattr(app, "extensions", {}).get("otel_monitor")
    provider = getattr(monitor, "tracer_provider", None)
    if provider is not None:
        provider.force_flush()
    time.sleep(0.2)


def measure(python: str, tree: str, stack: str, path: str, requests: int, warm: int, sink: str) -> dict[int, int]:
    """Instructions by valgrind thread id for one run."""
    out = tempfile.mkdtemp(prefix="callgrind-")
    env = dict(os.environ, PYTHONPATH=tree, BENCH_OTEL_MONITOR_EXPORT="otlp", BENCH_OTLP_SINK=sink)
    env["PYTHONHASHSEED"] = "0"
    # Full batches only (512 spans, as at the benchmark's request rates), not one per 5 s of the
    # much slower process under valgrind: the export thread's count per request is then the real one.
    env["OTEL_BSP_SCHEDULE_DELAY"] = "600000"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--separate-threads=yes",
        f"--callgrind-out-file={out}/cg.out",
        python,
        os.path.join(_HERE, "request_instructions.py"),
        "--inner",
        "--stack",
        stack,
        "--path",
        path,
        "--warm",
        str(warm),
        "--requests",
        str(requests),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=tree)
    names = json.loads(proc.stdout.split("THREADS ", 1)[1].splitlines()[0])
    counts: dict[int, int] = {}
    for name in glob.glob(f"{out}/cg.out-*"):
        tid = int(name.rsplit("-", 1)[1])
        with open(name) as fh:
            text = fh.read()
        match = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        counts[tid] = int(match.group(1)) if match else 0
    counts[0] = len(names)  # how many Python threads were alive at the end
    print(f"  {requests} requests: threads {names}", file=sys.stderr)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inner", action="store_true")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--tree", default=os.path.dirname(_HERE))
    parser.add_argument("--stack", default="otel_monitor_100")
    parser.add_argument("--path", default="/users/42")
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--requests", default="500,1500")
    args = parser.parse_args()
    if args.inner:
        inner(args.stack, args.path, args.warm, int(args.requests))
        return
    low, high = (int(n) for n in args.requests.split(","))
    sink_proc = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink_proc.stdout is not None
        sink = f"http://127.0.0.1:{sink_proc.stdout.readline().strip()}"
        a = measure(args.python, args.tree, args.stack, args.path, low, args.warm, sink)
        b = measure(args.python, args.tree, args.stack, args.path, high, args.warm, sink)
    finally:
        sink_proc.terminate()
        sink_proc.wait()
    per = high - low
    rows = []
    for tid in sorted(set(a) | set(b)):
        if tid == 0:
            continue
        rows.append((tid, (b.get(tid, 0) - a.get(tid, 0)) / per))
    total = sum(v for _, v in rows)
    result = {"tree": args.tree, "stack": args.stack, "path": args.path, "per_thread": dict(rows), "total": total}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
