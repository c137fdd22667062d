"""What the benchmarks share: a scratch database on SQLite or PostgreSQL.

PostgreSQL is the server at ``$SUPPORTBOT_BENCH_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each scratch database is created for one run and
dropped afterwards.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from bot.config import EmbeddingsSettings

# The benchmarks measure keyword search unless they say otherwise: with the ``embeddings`` extra
# installed, the default ``backend = "auto"`` would run the local model in every knowledge base
# they build and in every daemon they start (subprocesses inherit the variable).
KEYWORD_ONLY = EmbeddingsSettings(backend="none")
os.environ.setdefault("SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND", "none")

PG_URL = os.environ.get("SUPPORTBOT_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@asynccontextmanager
async def scratch_database(kind: str) -> AsyncIterator[str | None]:
    """A URL to a new empty database of ``kind`` ("sqlite" or "postgresql"), or None when
    PostgreSQL is not reachable."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        return
    try:
        admin = await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError):
        yield None
        return
    name = f"sbbench_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield f"postgresql+asyncpg://{PG_URL.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    finally:
        admin = await asyncpg.connect(PG_URL, timeout=5)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
