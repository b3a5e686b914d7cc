"""A Flask app serving a file with send_file, for the wsgi.file_wrapper (sendfile) tests."""

import os

from flask import Flask, send_file

from otel_monitor import Monitor

app = Flask("file_app")
FILE = os.environ["FILE_APP_PATH"]


@app.get("/file")
def serve_file():
    return send_file(FILE, mimetype="application/octet-stream")


Monitor(app, system_metrics=False, analytics=False)
