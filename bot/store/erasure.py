"""The right to erasure: removing a smith's data for good, and the retention sweep.

``erase_smith`` removes everything the store holds about one smith — its threads, their runs and
tool calls, outbox actions, inbox deliveries and lanes, conversation handles, stored files,
memories, claim-on-login aliases and the smith row itself — in ONE write transaction, on SQLite
and PostgreSQL alike, and leaves a row in ``erasures`` that says that it happened, when, at whose
request and how many rows went, and nothing about who the smith was (its opaque store id only).

``erase_closed_threads`` is ``retention.days``: threads closed and untouched for longer than that
go the same way, one transaction per smith; a smith left with no thread at all goes too.

Every table of the schema is either in ``ERASED_TABLES`` (this module removes its rows of a smith)
or in ``UNRELATED_TABLES`` (it holds nothing of any smith); tests/store/test_erasure.py fails when
a new table is in neither, or when a table that references threads or smiths is not erased.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from sqlalchemy import delete, insert, literal_column, select, true, tuple_, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql import ColumnElement

from bot.domain import JSON, InboxStatus, NotFound, ThreadState, new_id, now
from bot.store.database import Database
from bot.store.deliveries import DONE as DELIVERY_DONE
from bot.store.inbox import lane_key
from bot.store.schema import (
    SENDER_EXPRESSION,
    agents,
    conversations,
    deliveries,
    erasures,
    feedback,
    files,
    inbox,
    inbox_live,
    lanes,
    memories,
    outbox,
    person_messages,
    runs,
    smith_aliases,
    smiths,
    threads,
    tool_calls,
)

log = logging.getLogger(__name__)

Requester = Literal["cli", "api", "retention"]

# What an erasure removes, in the order it removes it (children before the rows they reference).
ERASED_TABLES: tuple[str, ...] = (
    "deliveries",
    "lanes",
    "tool_calls",
    "feedback",
    "outbox",
    "inbox",
    "conversations",
    "person_messages",
    "runs",
    "threads",
    "files",
    "memories",
    "smith_aliases",
    "smiths",
)
# Tables that hold nothing of any smith: agent definitions, the knowledge base, cursors (poller
# positions, tick claims, the token key) and the erasure audit trail itself.
UNRELATED_TABLES: frozenset[str] = frozenset(
    {
        "agents",
        "agent_versions",
        "cursors",
        "kb_documents",
        "kb_chunks",
        "kb_terms",
        "kb_embeddings",
        "erasures",
        "console_signouts",  # the operator console's ended sessions: no customer in them
        # The keys of pending inbox and outbox rows (their lane, their thread), nothing else:
        # the triggers of migration 0015 delete them with the rows this module erases.
        "inbox_live",
        "outbox_live",
    }
)

# SQLite takes at most 32766 bound parameters per statement (999 before 3.32); stay well under.
_IN_CHUNK = 500
# Threads looked at per retention query; each smith among them is erased in its own transaction.
RETENTION_BATCH = 200
_DAY = 86_400.0
_PENDING = InboxStatus.PENDING.value


@dataclass(frozen=True, slots=True)
class Erasure:
    """The audit record of one erasure: no personal data, only what and how much went."""

    id: str
    smith_id: str
    agent_id: str
    erased_at: float
    counts: dict[str, int]
    requested_by: str

    @property
    def smith_erased(self) -> bool:
        return self.counts.get("smiths", 0) > 0

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "object": "smith.erasure",
            "smith_id": self.smith_id,
            "agent_id": self.agent_id,
            "erased_at": self.erased_at,
            "counts": dict(self.counts),
            "requested_by": self.requested_by,
        }


@dataclass(slots=True)
class RetentionReport:
    """What one retention pass removed (and what it left for a later pass)."""

    erasures: list[Erasure] = field(default_factory=list)
    # Threads past the cutoff left alone because a message was waiting or a turn held them.
    busy_threads: int = 0

    @property
    def threads(self) -> int:
        return sum(e.counts.get("threads", 0) for e in self.erasures)

    @property
    def smiths(self) -> int:
        return sum(1 for e in self.erasures if e.smith_erased)


class Erasures:
    """Hard deletion of a smith's data, on SQLite and PostgreSQL alike."""

    def __init__(self, db: Database):
        self.db = db

    async def erase_smith(self, smith_id: str, *, requested_by: Requester) -> Erasure:
        """Remove the smith (archived or not) and everything keyed to it, for good; raises
        ``NotFound`` when there is no such smith (never was, or already erased)."""

        def work(conn: Connection) -> Erasure:
            smith = _lock_smith(conn, smith_id)
            if smith is None:
                raise NotFound(f"no smith {smith_id!r}")
            return _erase(conn, smith, None, requested_by=requested_by, at=now())

        erasure = await self.db.run_tx(work)
        log.info("erased smith %s (%s): %s", erasure.smith_id, requested_by, _summary(erasure))
        return erasure

    async def erase_closed_threads(
        self, *, days: float, at: float | None = None, batch: int = RETENTION_BATCH
    ) -> RetentionReport:
        """Erase every thread closed and untouched for more than ``days`` (its ``updated_at``
        is older: closing a thread stamps it, and anything after the close stamps it again, so
        a thread is never erased sooner than ``days`` after it closed).

        A smith is erased with its last thread when nothing else of it remains: no other thread
        and no message waiting for it. Threads with a waiting message or a running turn are
        left for a later pass. One transaction per smith, so a long backlog never holds
        SQLite's write lock for long.
        """
        at = now() if at is None else at
        cutoff = at - days * _DAY
        report = RetentionReport()
        after: tuple[float, str] | None = None
        while True:
            query = (
                select(threads.c.id, threads.c.smith_id, threads.c.updated_at)
                .where(threads.c.state == ThreadState.CLOSED.value, threads.c.updated_at < cutoff)
                .order_by(threads.c.updated_at, threads.c.id)
                .limit(batch)
            )
            if after is not None:
                # Keyset paging: threads skipped as busy are not looked at again in this pass.
                query = query.where(
                    tuple_(threads.c.updated_at, threads.c.id) > tuple_(*after)
                )
            found = await self.db.run_read(partial(_rows, query))
            if not found:
                break
            after = (found[-1].updated_at, found[-1].id)
            by_smith: dict[str, list[str]] = {}
            for row in found:
                by_smith.setdefault(row.smith_id, []).append(row.id)
            for smith_id, thread_ids in by_smith.items():
                erasure, busy = await self.db.run_tx(
                    partial(_retain, smith_id=smith_id, thread_ids=thread_ids, cutoff=cutoff, at=at)
                )
                report.busy_threads += busy
                if erasure is not None:
                    report.erasures.append(erasure)
            if len(found) < batch:
                break
        if report.erasures or report.busy_threads:
            log.info(
                "retention: erased %d threads and %d smiths closed before the last %g days; "
                "%d busy threads left for a later pass",
                report.threads, report.smiths, days, report.busy_threads,
            )
        return report

    async def list_erasures(self, *, smith_id: str | None = None, limit: int = 100) -> list[Erasure]:
        """The audit trail, newest first."""
        query = select(erasures).order_by(erasures.c.erased_at.desc(), erasures.c.id).limit(limit)
        if smith_id is not None:
            query = query.where(erasures.c.smith_id == smith_id)
        rows = await self.db.run_read(lambda conn: list(conn.execute(query).mappings()))
        return [_erasure(r) for r in rows]


# -- one unit of work -------------------------------------------------------------------------


def _lock_smith(conn: Connection, smith_id: str) -> RowMapping | None:
    """The smith row, locked for the transaction on PostgreSQL: a concurrent turn that creates a
    thread under it (the foreign key takes a share lock on this row) waits for the erasure and
    then fails instead of leaving a thread behind an erased smith. SQLite's write transaction
    already excludes every other writer."""
    query = select(smiths).where(smiths.c.id == smith_id).with_for_update()
    return conn.execute(query).mappings().first()


def _rows(query: Any, conn: Connection) -> list[Any]:
    return list(conn.execute(query))


def _retain(
    conn: Connection, *, smith_id: str, thread_ids: Sequence[str], cutoff: float, at: float
) -> tuple[Erasure | None, int]:
    """Retention for one smith's expired threads: (the erasure, threads left as busy)."""
    smith = _lock_smith(conn, smith_id)
    if smith is None:
        return None, 0
    # Read again under the lock: a thread reopened since the listing is no longer expired.
    expired = [
        r
        for r in _threads_of(conn, smith_id)
        if r.id in set(thread_ids) and r.state == ThreadState.CLOSED.value and r.updated_at < cutoff
    ]
    keys = {lane_key(r.slug, r.external_id): r.id for r in expired}
    lane_rows = _chunked_rows(
        conn, lambda part: select(lanes.c.key, lanes.c.lease_expires_at)
        .where(lanes.c.key.in_(part)).with_for_update(), list(keys)
    )
    held = {r.key for r in lane_rows if r.lease_expires_at is not None and r.lease_expires_at > at}
    waiting = {
        r.lane
        for r in _chunked_rows(
            conn,
            lambda part: select(inbox.c.lane).where(inbox.c.lane.in_(part), inbox.c.status == _PENDING),
            list(keys),
        )
    }
    busy = {keys[k] for k in held | waiting} | _with_unparsed_deliveries(conn, expired)
    erasable = [r.id for r in expired if r.id not in busy]
    if not erasable:
        return None, len(busy)
    remaining = [r.id for r in _threads_of(conn, smith_id) if r.id not in set(erasable)]
    whole = not remaining and smith["updated_at"] < cutoff and not _has_waiting_messages(conn, smith)
    erasure = _erase(
        conn, smith, None if whole else erasable, requested_by="retention", at=at
    )
    return erasure, len(busy)


def _erase(
    conn: Connection,
    smith: RowMapping,
    thread_ids: Sequence[str] | None,
    *,
    requested_by: Requester,
    at: float,
) -> Erasure:
    """Delete the smith's threads (``thread_ids``, or all of them and the smith itself when
    None) with everything that hangs off them, and record the erasure. Runs inside the caller's
    write transaction, after ``_lock_smith``."""
    whole = thread_ids is None
    smith_id: str = smith["id"]
    all_threads = _threads_of(conn, smith_id)
    chosen = all_threads if whole else [r for r in all_threads if r.id in set(thread_ids or ())]
    tids = [r.id for r in chosen]
    lane_keys = [lane_key(r.slug, r.external_id) for r in chosen]
    counts: dict[str, int] = dict.fromkeys(ERASED_TABLES, 0)
    counts["deliveries"] = _drop_unparsed_deliveries(conn, chosen, at)

    # Lanes first: deleting a lane row takes its lock, so a turn of these threads that is about
    # to commit either commits before this line (its run is then seen and erased below) or finds
    # its lease gone and commits nothing (LeaseLost).
    if whole:
        counts["lanes"] = _delete_in(conn, lanes, lanes.c.key, lane_keys)
    else:
        # Retention leaves a lane that got a message meanwhile: its row is what lets the
        # dispatcher claim that message (see ``_retain``, which skipped such lanes already).
        counts["lanes"] = _delete_in(
            conn, lanes, lanes.c.key, lane_keys,
            ~lanes.c.key.in_(select(inbox_live.c.lane)),
        )

    run_ids = [
        r[0]
        for r in _chunked_rows(conn, lambda part: select(runs.c.id).where(runs.c.thread_id.in_(part)), tids)
    ]
    if whole:
        run_ids = sorted(
            set(run_ids)
            | {r[0] for r in conn.execute(select(runs.c.id).where(runs.c.smith_id == smith_id))}
        )

    inbox_ids = _inbox_ids(conn, smith, lane_keys, run_ids, whole=whole)
    file_ids = (
        [r[0] for r in conn.execute(select(files.c.id).where(files.c.smith_id == smith_id))]
        if whole
        else _files_only_in(conn, smith_id, inbox_ids, run_ids, tids)
    )

    counts["tool_calls"] = _delete_in(conn, tool_calls, tool_calls.c.run_id, run_ids)
    counts["feedback"] = _delete_in(conn, feedback, feedback.c.run_id, run_ids)
    counts["outbox"] = _delete_in(conn, outbox, outbox.c.thread_id, tids) + _delete_in(
        conn, outbox, outbox.c.run_id, run_ids
    )
    counts["inbox"] = _delete_in(conn, inbox, inbox.c.id, inbox_ids)
    counts["conversations"] = _delete_in(conn, conversations, conversations.c.thread_id, tids)
    if whole:
        counts["conversations"] += conn.execute(
            delete(conversations).where(conversations.c.smith_id == smith_id)
        ).rowcount
    counts["person_messages"] = _delete_in(
        conn, person_messages, person_messages.c.thread_id, tids
    )
    counts["runs"] = _delete_in(conn, runs, runs.c.id, run_ids)
    counts["threads"] = _delete_in(conn, threads, threads.c.id, tids)
    counts["files"] = _delete_in(conn, files, files.c.id, file_ids)
    if whole:
        for table in (memories, smith_aliases):
            counts[table.name] = conn.execute(
                delete(table).where(table.c.smith_id == smith_id)
            ).rowcount
        counts["smiths"] = conn.execute(delete(smiths).where(smiths.c.id == smith_id)).rowcount

    erasure = Erasure(
        id=new_id("era"),
        smith_id=smith_id,
        agent_id=smith["agent_id"],
        erased_at=at,
        counts=counts,
        requested_by=requested_by,
    )
    conn.execute(
        insert(erasures).values(
            id=erasure.id,
            smith_id=erasure.smith_id,
            agent_id=erasure.agent_id,
            erased_at=erasure.erased_at,
            counts=erasure.counts,
            requested_by=erasure.requested_by,
        )
    )
    return erasure


def _threads_of(conn: Connection, smith_id: str) -> list[Any]:
    query = (
        select(
            threads.c.id, threads.c.external_id, threads.c.channel, threads.c.state,
            threads.c.updated_at, agents.c.slug,
        )
        .join(agents, agents.c.id == threads.c.agent_id)
        .where(threads.c.smith_id == smith_id)
    )
    return list(conn.execute(query))


def _unparsed_deliveries(channel: str, order_keys: Sequence[str]) -> ColumnElement[bool]:
    return (
        (deliveries.c.channel == channel)
        & deliveries.c.order_key.in_(order_keys)
        & (deliveries.c.status == _PENDING)
    )


def _by_channel(thread_rows: Sequence[Any]) -> dict[str, list[str]]:
    """Threads' external ids by channel: a delivery's order key is its thread's external id."""
    found: dict[str, list[str]] = {}
    for row in thread_rows:
        found.setdefault(row.channel, []).append(row.external_id)
    return found


def _drop_unparsed_deliveries(conn: Connection, thread_rows: Sequence[Any], at: float) -> int:
    """Webhook deliveries of these threads stored but not parsed yet: their bodies (the
    customer's words) go, and each row stays as parsed, bodiless, like any parsed delivery.

    Dropped rather than parsed first and erased with the rest: parsed after the erasure, a
    delivery would bring the thread, the smith and its words back. The row stays so that the
    platform's redelivery of it is ignored like any redelivery, for the same reason; it is
    pruned with the parsed ones. (A delivery a parser is parsing at this very moment is past
    this: what it writes lands after the erasure.)"""
    dropped = 0
    for channel, keys in _by_channel(thread_rows).items():
        for part in _chunks(keys):
            dropped += conn.execute(
                update(deliveries)
                .where(_unparsed_deliveries(channel, part))
                .values(
                    status=DELIVERY_DONE,
                    body=None,
                    error="erased before it was parsed",
                    lease_token=None,
                    lease_expires_at=None,
                    finished_at=at,
                )
            ).rowcount
    return dropped


def _with_unparsed_deliveries(conn: Connection, thread_rows: Sequence[Any]) -> set[str]:
    """The ids of those threads that a delivery not parsed yet belongs to (a message came in:
    retention leaves the thread, as for one waiting in the inbox)."""
    ids = {(r.channel, r.external_id): r.id for r in thread_rows}
    found: set[str] = set()
    for channel, keys in _by_channel(thread_rows).items():
        for part in _chunks(keys):
            query = select(deliveries.c.order_key).where(_unparsed_deliveries(channel, part))
            found.update(ids[(channel, key)] for (key,) in conn.execute(query))
    return found


def _identities(conn: Connection, smith: RowMapping) -> list[str]:
    """Every external id the smith is known by: its own and those claimed onto it at login."""
    found = {r[0] for r in conn.execute(
        select(smith_aliases.c.external_id).where(smith_aliases.c.smith_id == smith["id"])
    )}
    if smith["external_id"]:
        found.add(smith["external_id"])
    return sorted(found)


def _sender_is(conn: Connection, identities: Sequence[str]) -> ColumnElement[bool]:
    """Deliveries sent by any of ``identities``: spelled as ``ix_inbox_sender`` indexes it."""
    sender: ColumnElement[str] = literal_column(SENDER_EXPRESSION[conn.dialect.name])
    return sender.in_(identities)


def _has_waiting_messages(conn: Connection, smith: RowMapping) -> bool:
    identities = _identities(conn, smith)
    if not identities:
        return False
    query = select(inbox.c.id).where(inbox.c.status == _PENDING, _sender_is(conn, identities)).limit(1)
    return conn.execute(query).first() is not None


def _inbox_ids(
    conn: Connection, smith: RowMapping, lane_keys: Sequence[str], run_ids: Sequence[str],
    *, whole: bool,
) -> list[int]:
    """Deliveries of the erased threads (by lane and by the run that answered them); for a
    whole smith also every delivery it sent, even one no thread was made for yet."""
    found: set[int] = set()
    lane_filter: ColumnElement[bool] = true() if whole else inbox.c.status != _PENDING
    for part in _chunks(lane_keys):
        found.update(r[0] for r in conn.execute(
            select(inbox.c.id).where(inbox.c.lane.in_(part), lane_filter)
        ))
    for part in _chunks(run_ids):
        found.update(r[0] for r in conn.execute(select(inbox.c.id).where(inbox.c.run_id.in_(part))))
    if whole:
        identities = _identities(conn, smith)
        if identities:
            found.update(r[0] for r in conn.execute(select(inbox.c.id).where(_sender_is(conn, identities))))
    return sorted(found)


def _files_only_in(
    conn: Connection, smith_id: str, inbox_ids: Sequence[int], run_ids: Sequence[str],
    thread_ids: Sequence[str],
) -> list[str]:
    """The smith's files attached in the erased threads and in none of its other threads."""
    mine = {r[0] for r in conn.execute(select(files.c.id).where(files.c.smith_id == smith_id))}
    if not mine:
        return []
    erased = _file_refs(conn, inbox_ids, run_ids) & mine
    if not erased:
        return []
    erased_threads = set(thread_ids)
    kept_threads = [
        r[0]
        for r in conn.execute(select(threads.c.id).where(threads.c.smith_id == smith_id))
        if r[0] not in erased_threads
    ]
    kept_runs = [
        r[0] for r in _chunked_rows(
            conn, lambda part: select(runs.c.id).where(runs.c.thread_id.in_(part)), kept_threads
        )
    ]
    kept_inbox = [
        r[0] for r in _chunked_rows(
            conn, lambda part: select(inbox.c.id).where(inbox.c.run_id.in_(part)), kept_runs
        )
    ]
    return sorted(erased - _file_refs(conn, kept_inbox, kept_runs))


def _file_refs(conn: Connection, inbox_ids: Sequence[int], run_ids: Sequence[str]) -> set[str]:
    """Every ``file_id`` named in these deliveries and runs' inputs."""
    refs: set[str] = set()
    for row in _chunked_rows(
        conn, lambda part: select(inbox.c.payload).where(inbox.c.id.in_(part)), inbox_ids
    ):
        refs.update(_file_ids_in(row[0]))
    for row in _chunked_rows(
        conn, lambda part: select(runs.c.input).where(runs.c.id.in_(part)), run_ids
    ):
        refs.update(_file_ids_in(row[0]))
    return refs


def _file_ids_in(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "file_id" and isinstance(item, str):
                yield item
            else:
                yield from _file_ids_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _file_ids_in(item)


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _chunked_rows(conn: Connection, query_for: Any, values: Sequence[Any]) -> Iterable[Any]:
    for part in _chunks(values):
        yield from conn.execute(query_for(part))


def _delete_in(
    conn: Connection, table: Any, column: Any, values: Sequence[Any], *also: ColumnElement[bool]
) -> int:
    removed = 0
    for part in _chunks(values):
        removed += conn.execute(delete(table).where(column.in_(part), *also)).rowcount
    return removed


def _erasure(row: RowMapping) -> Erasure:
    return Erasure(
        id=row["id"],
        smith_id=row["smith_id"],
        agent_id=row["agent_id"],
        erased_at=row["erased_at"],
        counts={str(k): int(v) for k, v in dict(row["counts"]).items()},
        requested_by=row["requested_by"],
    )


def _summary(erasure: Erasure) -> str:
    return ", ".join(f"{n} {name}" for name, n in erasure.counts.items() if n) or "nothing"

