"""The async engine for SQLite and PostgreSQL behind one code path.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` for write transactions: a deferred
transaction that reads and then writes fails with "database is locked" under concurrency,
while an immediate one queues on the busy timeout instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.config import DatabaseSettings

_IMMEDIATE = "supportbot_immediate"


class Database:
    """Owns the engine; hands out write (``tx``) and read (``read``) transactions."""

    def __init__(self, settings: DatabaseSettings, *, connect_args: dict[str, Any] | None = None):
        self.url = settings.url
        self.is_sqlite = settings.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": settings.echo, "connect_args": dict(connect_args or {})}
        if self.is_sqlite:
            kwargs["connect_args"].setdefault("timeout", 30)
            if ":memory:" in settings.url or settings.url.endswith("://"):
                raise ValueError("supportbot needs a file-backed SQLite database, not :memory:")
            # aiosqlite runs each connection on its own thread; a small queue pool is right.
            kwargs["pool_size"] = 5
            kwargs["max_overflow"] = 10
        else:
            kwargs["pool_size"] = settings.pool_size
            kwargs["max_overflow"] = settings.pool_size
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(settings.url, **kwargs)
        self._write_lock = asyncio.Lock()
        if self.is_sqlite:
            _sqlite_events(self.engine)

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on clean exit."""
        if not self.is_sqlite:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        # SQLite has one writer at a time. Writers of this process queue here instead of inside
        # SQLite, whose busy handler sleeps in steps of up to 100 ms while it waits for the lock
        # (other processes sharing the file still wait on the busy timeout).
        async with self._write_lock, self.engine.connect() as conn:
            conn = await conn.execution_options(**{_IMMEDIATE: True})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (deferred on SQLite, so readers never queue behind writers)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_events(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start (pysqlite's own
        # implicit BEGIN is always deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def null_pool_engine(url: str) -> AsyncEngine:
    """A throwaway engine for one-shot work (migrations) that must not keep connections."""
    return create_async_engine(url, poolclass=NullPool)
