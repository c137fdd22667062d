# supportbot: the daemon on the embedded defaults unless configured by SUPPORTBOT_* variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SUPPORTBOT_HTTP__HOST=0.0.0.0 \
    SUPPORTBOT_DATABASE__URL=sqlite+aiosqlite:////data/supportbot.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY connectors ./connectors
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --create-home supportbot

USER supportbot
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, sys, urllib.request; port = os.environ.get('SUPPORTBOT_HTTP__PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"

STOPSIGNAL SIGTERM
CMD ["supportbot", "serve"]
