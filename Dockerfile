# The otel_monitor example app (examples/app.py) in a small image.
#   docker build -t otel-monitor-example .
#   docker run --rm -p 8000:8000 -e MONITORING_USERNAME=... -e MONITORING_PASSWORD=... otel-monitor-example
# docker-compose.yml builds it and wires it to the collector, Prometheus and Grafana.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app

# The package first (its layer is rebuilt only when the package changes), then the examples.
COPY pyproject.toml README.md LICENSE ./
COPY otel_monitor ./otel_monitor
COPY examples ./examples
RUN pip install . && rm -rf build *.egg-info

USER app
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/metrics', timeout=3).status == 200 else 1)"]

CMD ["python", "examples/app.py", "--host", "0.0.0.0", "--port", "8000"]
