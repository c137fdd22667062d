"""Counting what crosses the wire to PostgreSQL (the round-trip test and bench/turn_overhead.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


class ServerExchanges:
    """The writes to PostgreSQL's socket of every connection the engine opens: each is a wait
    for the server's answer (``BEGIN`` and ``COMMIT`` of a transaction as much as a statement)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "connect", self._wrap)

    def _wrap(self, dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy's adapter around the asyncpg connection, and asyncpg's asyncio transport.
        transport = dbapi_connection.driver_connection._transport
        write = transport.write

        def counted(data: bytes) -> None:
            self.count += 1
            write(data)

        transport.write = counted
