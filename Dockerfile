# eventlog's service image: `docker compose up` builds it (see docker-compose.yml).
FROM python:3.12-slim

# No .pyc files in the image, logs straight to `docker logs`.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what `pip install .` packages; tests, benchmarks and examples stay out.
COPY pyproject.toml README.md ./
COPY eventlog ./eventlog
COPY ingest ./ingest
COPY search ./search
COPY retention ./retention
COPY dashboards ./dashboards
RUN pip install . && rm -rf /src

# Not root: the service owns only its data dir (journal, tokens, signing key).
RUN useradd --system --uid 10001 --home-dir /var/lib/eventlog --create-home eventlog
USER eventlog
WORKDIR /var/lib/eventlog
ENV EVENTLOG_DATA_DIR=/var/lib/eventlog
VOLUME ["/var/lib/eventlog"]

EXPOSE 8080
# The slim image has no curl; the interpreter is there anyway.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["eventlog", "serve", "--host", "0.0.0.0", "--port", "8080"]
