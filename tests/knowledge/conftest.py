"""Fixtures for the knowledge base: a migrated database on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.config import DatabaseSettings, KnowledgeSettings
from bot.knowledge import KnowledgeBase
from bot.store.database import Database
from bot.store.migrate import upgrade


@pytest.fixture
async def kb_db(db_url: str) -> AsyncIterator[Database]:
    db = Database(DatabaseSettings(url=db_url))
    await upgrade(db.engine)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def kb(kb_db: Database) -> KnowledgeBase:
    """A knowledge base with small chunks, so short test documents still split."""
    return KnowledgeBase(kb_db, KnowledgeSettings(chunk_chars=400))
