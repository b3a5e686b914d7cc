"""Real receivers for the alert tests, all on 127.0.0.1: an HTTP server standing in for Slack and an
Alertmanager webhook receiver, and an SMTP server (aiosmtpd), optionally offering STARTTLS."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class HttpReceiver:
    """Records every POST by path; ``statuses[path]`` are answered in turn (then 200)."""

    def __init__(self) -> None:
        self.received: dict[str, list[Any]] = {}
        self.attempts: dict[str, int] = {}
        self.statuses: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.attempts[self.path] = receiver.attempts.get(self.path, 0) + 1
                    queued = receiver.statuses.get(self.path) or []
                    status = queued.pop(0) if queued else 200
                    if status == 200:
                        receiver.received.setdefault(self.path, []).append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, path: str) -> list[Any]:
        with self._lock:
            return list(self.received.get(path, []))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (openssl), and its key."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1; with ``tls=(cert, key)`` it offers STARTTLS (and requires it), or with
    ``implicit=True`` speaks TLS from the first byte."""

    def __init__(self, tls: tuple[Path, Path] | None = None, implicit: bool = False) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.envelopes: list[Any] = []
        self.tls_used: list[bool] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                receiver.envelopes.append(envelope)
                receiver.tls_used.append(server.transport.get_extra_info("ssl_object") is not None)
                receiver.messages.append(message_from_bytes(envelope.original_content))
                return "250 OK"

        options: dict[str, Any] = {}
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            # implicit: TLS from the first byte (SMTPS); else STARTTLS, required
            options = {"ssl_context": context} if implicit else {"tls_context": context, "require_starttls": True}
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy (a generous bound that only ends a hung test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
