"""Migrations: head matches the schema on both databases; serve migrates SQLite itself and
refuses a PostgreSQL database that is behind."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.app import Application
from bot.config import DatabaseSettings
from bot.store.database import Database
from bot.store.migrate import (
    MIGRATIONS,
    SchemaBehind,
    current_revision,
    ensure_current,
    head_revision,
    include_object,
    scripted_head,
    upgrade,
)
from bot.store.schema import metadata
from tests.conftest import make_settings


# The sender index (migration 0013) is on an expression, spelled per dialect: it lives in the
# migration alone and SQLAlchemy does not reflect it (``include_object`` leaves it out too).
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
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


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    # ``ensure_current`` trusts this reading to skip alembic on a database already at head.
    assert scripted_head() == head_revision()


async def test_a_database_behind_is_still_upgraded_or_refused(
    sqlite_url: str, pg_url: str
) -> None:
    # The cheap check answers only "at head"; anything older goes through alembic as before.
    for url, auto_upgrade in ((sqlite_url, True), (pg_url, False)):
        db = Database(DatabaseSettings(url=url))
        try:
            previous = ScriptDirectory(str(MIGRATIONS)).get_revision("head").down_revision
            assert isinstance(previous, str)
            await upgrade(db.engine, previous)
            if auto_upgrade:
                await ensure_current(db, auto_upgrade=True)
                assert await current_revision(db.engine) == head_revision()
            else:
                with pytest.raises(SchemaBehind, match=f"at {previous}"):
                    await ensure_current(db, auto_upgrade=False)
        finally:
            await db.dispose()
