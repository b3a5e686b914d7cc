"""gunicorn settings for ``gunicorn_instructions.py``: the worker writes its threads' names as it exits."""

import json
import os
import threading


def worker_exit(server: object, worker: object) -> None:
    """[worker pid, then each live thread's name in creation order (callgrind's thread 1, 2, ...)]."""
    threads = sorted((t.native_id or 0, t.name) for t in threading.enumerate())
    with open(os.environ["BENCH_THREAD_NAMES"], "w") as fh:
        json.dump([os.getpid(), *(name for _, name in threads)], fh)
