"""Migration 0002 on both databases: the full-text index works, and it downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from bot.config import DatabaseSettings, KnowledgeSettings
from bot.knowledge import KnowledgeBase
from bot.store.database import Database
from bot.store.migrate import _config, current_revision, upgrade


def _downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(_config(connection), revision)


async def test_downgrade_to_0001_and_back(db_url: str, tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=db_url))
    try:
        await upgrade(db.engine, "0002")
        async with db.engine.begin() as conn:
            await conn.run_sync(_downgrade, "0001")
        assert await current_revision(db.engine) == "0001"
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert not {t for t in tables if t.startswith("kb_")}

        await upgrade(db.engine)
        (tmp_path / "a.md").write_text("# Webhooks\n\nDeliveries are retried for three days.\n")
        kb = KnowledgeBase(db, KnowledgeSettings())
        await kb.ingest([tmp_path])
        [hit] = await kb.search("webhook retries")
        assert hit.source == "a.md"
    finally:
        await db.dispose()
