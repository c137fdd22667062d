"""Scheduled sweeps inside the daemon: APScheduler 3.x with one job and one database lock.

Two jobs use it: batch triage (``[triage]``) and the retention sweep (``[retention]``), each in
its own ``TriageScheduler`` under its own job name, lock and tick rows.

Every replica runs its own in-memory ``AsyncIOScheduler`` (job stores are never shared) with an
explicit time zone, ``max_instances=1``, coalescing and a misfire grace time. Interval schedules
are anchored to a fixed instant, so every replica fires on the same grid of ticks; cron ticks
are on a grid by nature. The job body then takes the database's word on who runs the tick:

- PostgreSQL: ``pg_try_advisory_xact_lock`` held for the whole sweep (a replica that finds it
  taken skips: another one is sweeping), and
- everywhere: a unique ``(job, tick)`` row in ``cursors``, so a replica whose timer fired late,
  after another had already finished the tick, does not sweep it a second time. SQLite
  single-file deployments rely on this row alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.crontab import cron_trigger
from bot.store.erasure import Erasures, RetentionReport
from bot.store.store import Store

log = logging.getLogger(__name__)

JOB = "triage"
# Interval ticks count from here, in the schedule's time zone: the same grid on every replica.
ANCHOR = datetime(2000, 1, 1)
HISTORY = 200

RETENTION_JOB = "retention"

SweepJob = Callable[[str], Awaitable[object]]


class Schedule(Protocol):
    """When a job fires: ``TriageSettings``, ``RetentionSettings``."""

    @property
    def interval_seconds(self) -> float | None: ...
    @property
    def cron(self) -> str | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def misfire_grace_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class TickRecord:
    """What this replica did at one tick: swept it, or why not."""

    tick: str
    ran: bool
    reason: str | None
    started_at: float
    finished_at: float
    error: str | None = None


def build_trigger(settings: Schedule) -> BaseTrigger:
    """The APScheduler trigger for a schedule; raises ``ValueError`` without one."""
    zone = ZoneInfo(settings.timezone)
    if settings.cron is not None:
        return cron_trigger(settings.cron, zone)
    if settings.interval_seconds is not None:
        return IntervalTrigger(
            seconds=settings.interval_seconds, start_date=ANCHOR.replace(tzinfo=zone), timezone=zone
        )
    raise ValueError("no triage schedule: set triage.interval_seconds or triage.cron")


def latest_tick(trigger: BaseTrigger, now: datetime, lookback: timedelta) -> datetime | None:
    """The trigger's latest fire time at or before ``now`` (looking back at most ``lookback``):
    the tick a job that fires now belongs to, whatever its scheduling delay."""
    latest = None
    fire = trigger.get_next_fire_time(None, now - lookback)
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return latest


class TriageScheduler:
    """Runs ``sweep(tick)`` on a schedule (``[triage]`` unless told otherwise), at most once per
    tick across every replica sharing the database."""

    def __init__(self, settings: Schedule, store: Store, sweep: SweepJob, *, job: str = JOB):
        self._settings = settings
        self._store = store
        self._sweep = sweep
        self._job = job
        self._zone = ZoneInfo(settings.timezone)
        self._trigger = build_trigger(settings)
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[TickRecord]] = set()
        self.history: deque[TickRecord] = deque(maxlen=HISTORY)

    async def start(self) -> None:
        if self._scheduler is not None:
            raise RuntimeError(f"the {self._job} scheduler is already running")
        scheduler = AsyncIOScheduler(timezone=self._zone, event_loop=asyncio.get_running_loop())
        scheduler.add_job(
            self._fire,
            self._trigger,
            id=self._job,
            name=f"{self._job} sweep",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, round(self._settings.misfire_grace_seconds)),
            replace_existing=True,
        )
        scheduler.start()
        self._scheduler = scheduler
        job = scheduler.get_job(self._job)
        log.info(
            "%s scheduled (%s, %s); next sweep at %s",
            self._job,
            self._settings.cron or f"every {self._settings.interval_seconds:g} s",
            self._settings.timezone,
            job.next_run_time.isoformat() if job and job.next_run_time else "never",
        )

    async def stop(self) -> None:
        """Stop firing and cancel a sweep in progress (its messages stay in the inbox)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _fire(self) -> None:
        # APScheduler runs this coroutine in a task of its own and cancels it on shutdown; the
        # sweep gets a named, tracked task so ``stop`` owns its end either way.
        task = asyncio.create_task(self.run_tick(), name=f"{self._job}-sweep")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        await asyncio.shield(task)

    def current_tick(self, now: datetime | None = None) -> str:
        """The tick a sweep starting now belongs to, as an ISO 8601 UTC string."""
        now = now or datetime.now(self._zone)
        lookback = timedelta(seconds=self._settings.misfire_grace_seconds + 1)
        if self._settings.interval_seconds is not None:
            lookback += timedelta(seconds=self._settings.interval_seconds)
        tick = latest_tick(self._trigger, now, lookback) or now
        return tick.astimezone(ZoneInfo("UTC")).isoformat(timespec="milliseconds")

    async def run_tick(self, tick: str | None = None) -> TickRecord:
        """One tick: take the lock and the tick's row, then sweep; recorded in ``history``."""
        tick = tick or self.current_tick()
        started = time.time()
        record: TickRecord
        try:
            async with self._store.exclusive(f"supportbot:{self._job}") as held:
                if not held:
                    record = TickRecord(
                        tick, False, "another replica is sweeping", started, time.time()
                    )
                elif not await self._store.claim_tick(self._job, tick):
                    record = TickRecord(tick, False, "tick already swept", started, time.time())
                else:
                    log.info("%s tick %s: sweeping", self._job, tick)
                    try:
                        await self._sweep(tick)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        log.exception("%s tick %s: the sweep failed", self._job, tick)
                        record = TickRecord(
                            tick, True, None, started, time.time(), f"{type(exc).__name__}: {exc}"
                        )
                    else:
                        record = TickRecord(tick, True, None, started, time.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The database did not answer: nothing ran; the next tick tries again.
            log.exception("%s tick %s: could not take the lock", self._job, tick)
            record = TickRecord(tick, False, "lock unavailable", started, time.time(), str(exc))
        if not record.ran:
            log.info("%s tick %s: not sweeping here: %s", self._job, tick, record.reason)
        self.history.append(record)
        return record


def retention_sweep(erasures: Erasures, days: float) -> SweepJob:
    """The ``[retention]`` job: erase what was closed more than ``days`` ago (the tick only
    names the run; the cutoff is taken from the clock when the sweep starts)."""

    async def sweep(tick: str) -> RetentionReport:
        return await erasures.erase_closed_threads(days=days)

    return sweep
