"""``retention.days`` on the scheduler: serve starts the job only when it is set, and a tick is
swept by one replica however many ask, erasing what closed before the cutoff."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.app import Application
from bot.config import ConfigError, DatabaseSettings, RetentionSettings, load_settings
from bot.domain import ThreadState, now
from bot.scheduler import RETENTION_JOB, TriageScheduler, retention_sweep
from bot.store.database import Database
from bot.store.erasure import Erasures
from bot.store.migrate import upgrade
from bot.store.schema import threads
from bot.store.store import Store, ThreadChange
from tests.conftest import make_settings


async def test_two_replicas_sweep_a_retention_tick_once(db_url: str) -> None:
    db = Database(DatabaseSettings(url=db_url))
    await upgrade(db.engine)
    try:
        store = Store(db)
        agent = await store.ensure_agent("support", "Support")
        smith = await store.ensure_smith("test:kim", agent.id)
        old = await store.ensure_thread(smith, "test:kim-old", "test")
        recent = await store.ensure_thread(smith, "test:kim-recent", "test")
        for thread in (old, recent):
            await store.update_thread(thread.id, ThreadChange(state=ThreadState.CLOSED))
        async with db.tx() as conn:
            await conn.execute(
                update(threads).where(threads.c.id == old.id).values(updated_at=now() - 8 * 86_400)
            )
        settings = RetentionSettings(days=7, interval_seconds=3600)
        replicas = [
            TriageScheduler(settings, store, retention_sweep(Erasures(db), 7), job=RETENTION_JOB)
            for _ in range(2)
        ]
        tick = replicas[0].current_tick()
        records = await asyncio.gather(*(r.run_tick(tick) for r in replicas))
        assert sorted(r.ran for r in records) == [False, True]
        assert all(r.error is None for r in records)
        assert [t.id for t in await store.list_threads()] == [recent.id]
        (erasure,) = await Erasures(db).list_erasures()
        assert erasure.requested_by == "retention" and erasure.counts["threads"] == 1
    finally:
        await db.dispose()


async def test_serve_runs_retention_only_when_days_are_set(sqlite_url: str) -> None:
    async with Application(make_settings(sqlite_url), serve_http=False) as app:
        assert app.retention is None
    settings = make_settings(sqlite_url, retention={"days": 30, "interval_seconds": 60})
    async with Application(settings, serve_http=False) as app:
        assert app.retention is not None
        record = await app.retention.run_tick("2000-01-01T00:00:00.000+00:00")
        assert record.ran and record.error is None


def test_retention_is_off_by_default_and_set_from_file_or_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().retention.days is None
    config = tmp_path / "supportbot.toml"
    config.write_text("[retention]\ndays = 90\n")
    assert load_settings(config).retention.days == 90
    monkeypatch.setenv("SUPPORTBOT_RETENTION__DAYS", "30")
    assert load_settings(config).retention.days == 30
    monkeypatch.setenv("SUPPORTBOT_RETENTION__DAYS", "0")
    with pytest.raises(ConfigError, match="retention"):
        load_settings(config)
