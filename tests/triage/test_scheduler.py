"""Scheduled sweeps: the tick grid, and one sweep per tick across replicas sharing a database."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.app import Application
from bot.config import DatabaseSettings, TriageSettings
from bot.crontab import cron_trigger
from bot.domain import ActionKind
from bot.scheduler import TriageScheduler, build_trigger, latest_tick
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.store import Store
from tests.pipeline.fakes import wait_for
from tests.triage.conftest import AppFactory
from tests.triage.fakes import Desk, backlog


def test_interval_ticks_sit_on_one_grid_whatever_the_replica_started() -> None:
    trigger = build_trigger(TriageSettings(interval_seconds=900, timezone="Europe/Paris"))
    zone = ZoneInfo("Europe/Paris")
    now = datetime(2026, 3, 1, 12, 7, 30, tzinfo=zone)
    tick = latest_tick(trigger, now, timedelta(seconds=1200))
    assert tick == datetime(2026, 3, 1, 12, 0, tzinfo=zone)
    # A late timer (a few seconds after the tick) belongs to the same tick.
    assert latest_tick(trigger, now.replace(minute=0, second=4), timedelta(seconds=1200)) == tick


def test_cron_ticks_in_the_configured_time_zone() -> None:
    trigger = build_trigger(TriageSettings(cron="30 9 * * 1-5", timezone="America/New_York"))
    now = datetime(2026, 3, 2, 9, 31, tzinfo=ZoneInfo("America/New_York"))  # a Monday
    tick = latest_tick(trigger, now, timedelta(seconds=301))
    assert tick is not None and tick.astimezone(UTC) == datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    assert latest_tick(trigger, now + timedelta(minutes=10), timedelta(seconds=301)) is None


def test_a_schedule_needs_interval_or_cron_not_both() -> None:
    with pytest.raises(ValueError):
        TriageSettings(interval_seconds=60, cron="* * * * *")
    with pytest.raises(ValueError, match="no triage schedule"):
        build_trigger(TriageSettings())


async def test_one_tick_is_claimed_once_even_when_both_replicas_ask_at_once(db_url: str) -> None:
    db = Database(DatabaseSettings(url=db_url))
    await upgrade(db.engine)
    try:
        store = Store(db)
        ran: list[str] = []

        async def sweep(tick: str) -> None:
            ran.append(tick)
            await asyncio.sleep(0.05)

        settings = TriageSettings(interval_seconds=60)
        replicas = [TriageScheduler(settings, store, sweep) for _ in range(2)]
        records = await asyncio.gather(
            *(r.run_tick("2026-03-01T12:00:00.000+00:00") for r in replicas)
        )
        assert ran == ["2026-03-01T12:00:00.000+00:00"]
        assert sorted(r.ran for r in records) == [False, True]
        # The next tick is free again; and one replica late for a finished tick does not rerun it.
        assert (await replicas[1].run_tick("2026-03-01T12:01:00.000+00:00")).ran
        late = await replicas[0].run_tick("2026-03-01T12:01:00.000+00:00")
        assert (late.ran, late.reason) == (False, "tick already swept")
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_two_schedulers_on_one_postgresql_database_sweep_each_tick_once(
    pg_url: str, make_app: AppFactory
) -> None:
    await _two_replicas(pg_url, make_app)


async def test_two_schedulers_on_one_sqlite_file_sweep_each_tick_once(
    sqlite_url: str, make_app: AppFactory
) -> None:
    await _two_replicas(sqlite_url, make_app)


async def _two_replicas(url: str, make_app: AppFactory) -> None:
    shared = backlog(40)
    # Two replicas, each with its own connector onto the same helpdesk.
    desks = [Desk(shared), Desk(shared)]
    triage = {"interval_seconds": 1.0, "since": "", "misfire_grace_seconds": 5}
    apps: list[Application] = [await make_app(url, desk, triage=triage) for desk in desks]
    schedulers = [app.scheduler for app in apps]
    assert all(s is not None for s in schedulers)

    def ran_ticks() -> list[str]:
        return [r.tick for s in schedulers if s for r in s.history if r.ran]

    await wait_for(lambda: len(set(ran_ticks())) >= 3, timeout=30)
    for app in apps:
        await app.stop()

    per_tick = Counter(ran_ticks())
    assert per_tick and max(per_tick.values()) == 1, per_tick
    skipped = [r for s in schedulers if s for r in s.history if not r.ran]
    assert {r.reason for r in skipped} <= {"another replica is sweeping", "tick already swept"}
    # Every tick swept on one replica only: one fetch per swept tick in all.
    assert sum(len(d.fetches) for d in desks) == len(ran_ticks())
    # And the backlog was answered once.
    for conversation in shared:
        executed = [a for d in desks for a in d.actions_on(conversation.id)]
        kinds = Counter(a.kind for a in executed)
        assert kinds[ActionKind.REPLY] + kinds[ActionKind.CLOSE] == 1, (conversation.id, kinds)


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("0,6", "sun,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("mon-fri", "mon-fri"),
        ("*", "*"),
    ],
)
def test_crontab_weekdays_count_from_sunday_as_in_cron(field: str, names: str) -> None:
    trigger = cron_trigger(f"0 9 * * {field}", ZoneInfo("UTC"))
    expected = cron_trigger(f"0 9 * * {names}", ZoneInfo("UTC")) if names != field else trigger
    assert str(trigger) == str(expected)
    with pytest.raises(ValueError):
        cron_trigger("0 9 * * 8", ZoneInfo("UTC"))
