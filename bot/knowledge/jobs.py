"""Knowledge syncs the operator API starts: run in the background, looked up by id.

``POST /v1/knowledge/sync`` must not hold an HTTP request open while a website is crawled, so
it starts a job and answers at once; ``GET /v1/knowledge/sync/{id}`` tells how it went. The job
runs in the replica that took the request, one source after another, each under the same
database lock the source's schedule takes (``supportbot:knowledge:NAME``, see
``bot.scheduler``): one replica at a time syncs a source, whether a tick or an operator started
it, and a source already being synced is reported as such rather than synced twice. The job's
record is a row in ``cursors`` (``knowledge-sync:ID``), so any replica can answer for it; records
are kept a week.

A job holds a lease on its record: the replica running it renews the row's ``updated_at``
(``heartbeat_at``) every sixth of ``lease_seconds``. A record still ``queued`` or ``running``
whose lease ran out belongs to a replica that died (killed, lost its database): whoever reads it
first records it ``failed``, "interrupted", so it is reported as such and never holds up a new
sync; a job whose lease holds is the one a new request for the same sources gets, on any replica.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import delete, insert, select, update

from bot.domain import new_id, now
from bot.knowledge.sync import KnowledgeSync, SyncReport
from bot.store import statements as st
from bot.store.locks import Locks
from bot.store.schema import cursors

log = logging.getLogger(__name__)

PREFIX = "knowledge-sync:"
KEEP_SECONDS = 7 * 86_400.0
JOB_ID = re.compile(r"^ksync_[0-9a-f]{32}$")
BUSY = "a sync of this source is already running (here or on another replica)"
LEASE_SECONDS = 60.0
ACTIVE = ("queued", "running")

Status = Literal["queued", "running", "succeeded", "failed"]


def lock_name(source: str) -> str:
    """The database lock one sync of ``source`` holds: the one its schedule's ticks take
    (``TriageScheduler`` job ``knowledge:NAME``)."""
    return f"supportbot:knowledge:{source}"


async def sync_exclusive(sync: KnowledgeSync, names: list[str]) -> list[SyncReport]:
    """Sync each source under its database lock (``kb sync`` and the jobs): a source another
    replica (or process) is syncing right now is reported busy, not synced twice."""
    locks = Locks(sync.kb.db)
    kinds = {s.name: s.kind for s in sync.sources}
    reports = []
    for name in names:
        async with locks.exclusive(lock_name(name)) as held:
            reports.append(
                await sync.sync_source(name) if held else SyncReport(name, kinds[name], error=BUSY)
            )
    return reports


@dataclass(frozen=True, slots=True)
class SyncJob:
    """One operator-started sync: ``sources`` fills in as each source finishes; ``failed``
    when any source reported an error (the others are applied all the same)."""

    id: str
    source: str | None  # one source, or None for all of them
    status: Status = "queued"
    created_at: float = field(default_factory=now)
    started_at: float | None = None
    finished_at: float | None = None
    sources: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    heartbeat_at: float | None = None  # the record's last renewal (its row's ``updated_at``)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources"] = list(self.sources)
        return {"object": "knowledge.sync_job", **data}


class SyncJobs:
    """Starts sync jobs in the background of this process and keeps their records."""

    def __init__(self, sync: KnowledgeSync, *, lease_seconds: float = LEASE_SECONDS):
        self._sync = sync
        self._db = sync.kb.db
        self._lease = lease_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._active: dict[str | None, SyncJob] = {}
        self._starting = asyncio.Lock()  # two requests at once start one job

    async def start(self, source: str | None = None) -> SyncJob:
        """A job syncing ``source`` (``KeyError`` when no source has that name) or all of
        them; the job this process is already running for the same sources, if any."""
        if source is not None and source not in {s.name for s in self._sync.sources}:
            raise KeyError(source)
        async with self._starting:
            running = self._active.get(source)
            if running is not None and running.id in self._tasks:
                return await self.get(running.id) or running
            elsewhere = await self._live(source)
            if elsewhere is not None:
                return elsewhere
            job = SyncJob(new_id("ksync"), source)
            await self._save(job, create=True)
            self._active[source] = job
            task = asyncio.create_task(self._run(job), name=f"knowledge-sync:{job.id}")
            self._tasks[job.id] = task
            task.add_done_callback(lambda _: self._tasks.pop(job.id, None))
            return job

    async def get(self, job_id: str) -> SyncJob | None:
        if not JOB_ID.match(job_id):
            return None
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(cursors.c.value, cursors.c.updated_at)
                    .where(cursors.c.name == PREFIX + job_id)
                )
            ).first()
        job = _job(row[0], row[1]) if row is not None else None
        return None if job is None else await self._unless_lapsed(job)

    async def _live(self, source: str | None) -> SyncJob | None:
        """A job for ``source`` whose lease holds, started by any replica; lapsed ones found on
        the way are recorded as interrupted."""
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(cursors.c.value, cursors.c.updated_at)
                    .where(st.prefix(cursors.c.name, PREFIX))
                    .order_by(cursors.c.updated_at.desc())
                )
            ).all()
        for row in rows:
            job = _job(row[0], row[1])
            if job is None or job.source != source or job.status not in ACTIVE:
                continue
            job = await self._unless_lapsed(job)
            if job.status in ACTIVE:
                return job
        return None

    async def _unless_lapsed(self, job: SyncJob) -> SyncJob:
        """``job``, or, when it is active but its lease ran out, ``job`` recorded as failed."""
        beat = job.heartbeat_at or job.created_at
        if job.status not in ACTIVE or job.id in self._tasks or now() - beat <= self._lease:
            return job
        log.warning("knowledge sync job %s: its lease ran out at %.0f; recording it as "
                    "interrupted", job.id, beat + self._lease)
        lapsed = replace(job, status="failed", finished_at=now(),
                         error="interrupted: the replica running it stopped renewing its lease")
        value = {k: v for k, v in lapsed.as_json().items() if k != "object"}
        async with self._db.tx() as conn:
            # Only if no renewal came in since it was read (the replica may be alive after all).
            done = await conn.execute(
                update(cursors)
                .where(cursors.c.name == PREFIX + job.id, cursors.c.updated_at == beat)
                .values(value=value, updated_at=now())
            )
        if done.rowcount == 1:
            return lapsed
        return await self.get(job.id) or job

    async def _renew(self, job_id: str) -> None:
        """Keep the job's lease while it runs: its record's ``updated_at``, renewed."""
        while True:
            await asyncio.sleep(self._lease / 6)
            try:
                async with self._db.tx() as conn:
                    await conn.execute(
                        update(cursors).where(cursors.c.name == PREFIX + job_id)
                        .values(updated_at=now())
                    )
            except Exception:  # the next renewal tries again; a lapsed lease says the rest
                log.warning("knowledge sync job %s: renewing its lease failed", job_id,
                            exc_info=True)

    async def wait(self, job_id: str) -> SyncJob | None:
        """The job once it is done (tests and shutdown; the API never waits)."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)
        return await self.get(job_id)

    async def close(self) -> None:
        """Stop the jobs still running; each records that it was interrupted."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: SyncJob) -> None:
        names = [job.source] if job.source is not None else [s.name for s in self._sync.sources]
        job = replace(job, status="running", started_at=now())
        await self._save(job)
        reports: list[SyncReport] = []
        lease = asyncio.create_task(self._renew(job.id), name=f"knowledge-sync-lease:{job.id}")
        try:
            for name in names:
                reports.extend(await sync_exclusive(self._sync, [name]))
                job = replace(job, sources=tuple(r.as_json() for r in reports))
                await self._save(job)
        except asyncio.CancelledError:
            await self._finish(job, "interrupted: the daemon stopped")
            raise
        except Exception as exc:
            log.exception("knowledge sync job %s failed", job.id)
            await self._finish(job, f"{type(exc).__name__}: the sync stopped unexpectedly")
            return
        finally:
            lease.cancel()
            await asyncio.gather(lease, return_exceptions=True)
        failed = [r.source for r in reports if r.error is not None]
        await self._finish(job, f"failed: {', '.join(failed)}" if failed else None)

    async def _finish(self, job: SyncJob, error: str | None) -> None:
        status: Status = "failed" if error is not None else "succeeded"
        try:
            await asyncio.shield(
                self._save(replace(job, status=status, finished_at=now(), error=error))
            )
        except Exception:  # the database is gone too: the record says running
            log.exception("knowledge sync job %s: could not record its end", job.id)

    async def _save(self, job: SyncJob, *, create: bool = False) -> None:
        value = {k: v for k, v in job.as_json().items() if k != "object"}
        at = now()
        async with self._db.tx() as conn:
            if create:
                await conn.execute(
                    delete(cursors).where(
                        st.prefix(cursors.c.name, PREFIX), cursors.c.updated_at < at - KEEP_SECONDS
                    )
                )
                await conn.execute(
                    insert(cursors).values(name=PREFIX + job.id, value=value, updated_at=at)
                )
            else:
                await conn.execute(
                    update(cursors)
                    .where(cursors.c.name == PREFIX + job.id)
                    .values(value=value, updated_at=at)
                )


def _job(value: Any, updated_at: float) -> SyncJob | None:
    """A job from its record (``updated_at``: its row's, the lease's last renewal)."""
    if not isinstance(value, dict):
        return None
    return SyncJob(**{**value, "sources": tuple(value.get("sources") or ()),
                      "heartbeat_at": updated_at})
