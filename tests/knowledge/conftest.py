"""Fixtures for the knowledge base: a migrated database on SQLite and PostgreSQL, and the fake
Intercom for the Help Center source."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.config import DatabaseSettings, KnowledgeSettings
from bot.knowledge import KnowledgeBase
from bot.store.database import Database
from bot.store.migrate import upgrade
from tests.fakes.intercom import FakeIntercom


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


@pytest.fixture
async def fake_intercom() -> AsyncIterator[FakeIntercom]:
    """A fake Intercom; any request that violates the 2.14 spec fails the test."""
    fake = FakeIntercom()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    if fake.violations:
        pytest.fail("requests that violate Intercom's spec:\n" + "\n".join(fake.violations))
