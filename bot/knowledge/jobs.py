"""Knowledge syncs the operator API starts: run in the background, looked up by id.

``POST /v1/knowledge/sync`` must not hold an HTTP request open while a website is crawled, so
it starts a job and answers at once; ``GET /v1/knowledge/sync/{id}`` tells how it went. The job
runs in the replica that took the request, one source after another, each under the same
database lock the source's schedule takes (``supportbot:knowledge:NAME``, see
``bot.scheduler``): one replica at a time syncs a source, whether a tick or an operator started
it, and a source already being synced is reported as such rather than synced twice. The job's
record is a row in ``cursors`` (``knowledge-sync:ID``), so any replica can answer for it; records
are kept a week. A record left ``running`` by a replica that died stays so (its
``started_at`` tells since when).
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

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources"] = list(self.sources)
        return {"object": "knowledge.sync_job", **data}


class SyncJobs:
    """Starts sync jobs in the background of this process and keeps their records."""

    def __init__(self, sync: KnowledgeSync):
        self._sync = sync
        self._db = sync.kb.db
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
            value = (
                await conn.execute(select(cursors.c.value).where(cursors.c.name == PREFIX + job_id))
            ).scalar_one_or_none()
        if not isinstance(value, dict):
            return None
        return SyncJob(**{**value, "sources": tuple(value.get("sources") or ())})

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
