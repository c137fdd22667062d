"""Scheduler locks: one replica runs each tick of a job, one holds a named lock at a time."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import delete, text
from sqlalchemy.engine import Connection

from bot.domain import now
from bot.store import statements as st
from bot.store.database import Database
from bot.store.schema import cursors


class Locks:
    def __init__(self, db: Database):
        self.db = db
        self._insert_tick = db.insert_ignore(cursors, ["name"])

    async def claim_tick(self, job: str, tick: str, *, keep_seconds: float = 7 * 86_400.0) -> bool:
        """Claim one tick of a scheduled job for this process: True for exactly one caller per
        ``(job, tick)`` however many replicas ask (a unique row in ``cursors``). Claims older
        than ``keep_seconds`` are forgotten on the way."""
        at = now()
        prefix = f"tick:{job}:"

        def work(conn: Connection) -> bool:
            result = conn.execute(
                self._insert_tick.values(
                    name=prefix + tick, value={"claimed_at": at}, updated_at=at
                )
            )
            conn.execute(
                delete(cursors).where(
                    st.prefix(cursors.c.name, prefix), cursors.c.updated_at < at - keep_seconds
                )
            )
            return bool(result.rowcount == 1)

        return await self.db.run_tx(work)

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """Hold a database-wide lock named ``name`` for the block, if free: yields False when
        another session holds it. PostgreSQL: ``pg_try_advisory_xact_lock`` in a transaction kept
        open for the block (released by commit, rollback or a dropped connection). SQLite:
        always True: a single-file deployment relies on ``claim_tick`` alone."""
        if self.db.is_sqlite:
            yield True
            return
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        async with self.db.engine.connect() as conn, conn.begin():
            got = (
                await conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
            ).scalar_one()
            yield bool(got)
