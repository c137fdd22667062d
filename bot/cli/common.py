"""What the commands that read the database share: opening the store, printing a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.config import Settings


async def open_store(settings: Settings) -> Any:
    from bot.store.database import Database
    from bot.store.migrate import ensure_current
    from bot.store.store import Store

    db = Database(settings.database)
    try:
        await ensure_current(db, auto_upgrade=db.is_sqlite)
    except BaseException:
        await db.dispose()  # the caller's ``finally`` never runs when opening failed
        raise
    return Store(db)


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
