"""Migrations: head matches the schema on both databases; serve migrates SQLite itself and
refuses a PostgreSQL database that is behind."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.app import Application
from bot.config import DatabaseSettings
from bot.store.database import Database
from bot.store.migrate import (
    SchemaBehind,
    current_revision,
    head_revision,
    include_object,
    upgrade,
)
from bot.store.schema import metadata
from tests.conftest import make_settings


async def test_head_matches_the_schema(db_url: str) -> None:
    db = Database(DatabaseSettings(url=db_url))
    try:
        await upgrade(db.engine)
        assert await current_revision(db.engine) == head_revision()
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"compare_type": True, "include_object": include_object}
                    ),
                    metadata,
                )
            )
        assert diff == []
        await upgrade(db.engine)  # idempotent
    finally:
        await db.dispose()


async def test_serve_migrates_an_embedded_sqlite_database(sqlite_url: str) -> None:
    app = Application(make_settings(sqlite_url), serve_http=False, run_pipeline=False)
    await app.start()
    try:
        assert await current_revision(app.db.engine) == head_revision()
    finally:
        await app.stop()


async def test_serve_refuses_a_postgresql_database_that_is_behind(pg_url: str) -> None:
    app = Application(make_settings(pg_url), serve_http=False, run_pipeline=False)
    with pytest.raises(SchemaBehind, match="supportbot db upgrade"):
        await app.start()
    await upgrade(app.db.engine)
    await app.start()
    await app.stop()
