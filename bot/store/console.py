"""The operator console's sessions signed out before their cookie expired.

A console cookie is signed, not stored (``bot.http.sessions``), so ending one session needs a
record that outlives the browser's copy: a row per signed-out session id, kept until the
cookie would have expired anyway. Every replica reads the same rows.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from bot.domain import now
from bot.store.database import Database
from bot.store.schema import console_signouts


class ConsoleSignouts:
    def __init__(self, db: Database):
        self.db = db

    async def sign_out(self, sid: str, expires_at: float) -> None:
        """End session ``sid`` everywhere; drop the rows of cookies that have expired since."""

        def work(conn: Connection) -> None:
            conn.execute(delete(console_signouts).where(console_signouts.c.expires_at < now()))
            known = select(console_signouts.c.sid).where(console_signouts.c.sid == sid)
            if conn.execute(known).first() is None:
                conn.execute(insert(console_signouts).values(sid=sid, expires_at=expires_at))

        await self.db.run_tx(work)

    async def signed_out(self, sid: str) -> bool:
        query = select(console_signouts.c.sid).where(console_signouts.c.sid == sid)
        row = await self.db.run_read(lambda conn: conn.execute(query).first())
        return row is not None
