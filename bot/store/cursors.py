"""Named JSON values a part keeps across restarts (a poller's position, a shared key)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from bot.domain import JSON, now
from bot.store.database import Database
from bot.store.schema import cursors


class Cursors:
    def __init__(self, db: Database):
        self.db = db

    async def get_cursor(self, name: str) -> JSON | None:
        query = select(cursors.c.value).where(cursors.c.name == name)
        row = await self.db.run_read(lambda conn: conn.execute(query).first())
        return row[0] if row else None

    async def set_cursor(self, name: str, value: JSON) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(cursors).where(cursors.c.name == name))
            conn.execute(insert(cursors).values(name=name, value=value, updated_at=now()))

        await self.db.run_tx(work)
