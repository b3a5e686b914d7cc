"""A Flask app serving a file with send_file, for the wsgi.file_wrapper (sendfile) tests.

``/file`` serves ``FILE_APP_PATH`` by path; ``/counted`` serves it through a :class:`CountingFile`,
which notes every read made through Python in ``FILE_APP_READS``: a server that sends the file with
``sendfile()`` (from its ``fileno()``) reads none.
"""

import os

from flask import Flask, send_file

from otel_monitor import Monitor

app = Flask("file_app")
FILE = os.environ["FILE_APP_PATH"]
READS = os.environ.get("FILE_APP_READS", os.devnull)


class CountingFile:
    """A binary file whose reads through Python (``read``, iteration) are noted in ``READS``."""

    mode = "rb"

    def __init__(self, path: str) -> None:
        self._file = open(path, "rb")  # closed by the server through close()

    def read(self, size: int = -1) -> bytes:
        with open(READS, "a") as out:
            out.write(f"read {size}\n")
        return self._file.read(size)

    def __iter__(self):
        while chunk := self.read(65536):
            yield chunk

    def fileno(self) -> int:
        return self._file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


@app.get("/file")
def serve_file():
    return send_file(FILE, mimetype="application/octet-stream")


@app.get("/counted")
def serve_counted():
    response = send_file(CountingFile(FILE), mimetype="application/octet-stream", etag=False)
    response.content_length = os.path.getsize(FILE)
    return response


Monitor(app, system_metrics=False, analytics=False)
