"""Raw deliveries: a platform's webhook body stored as it arrived, before the acknowledgement,
and parsed into inbox messages after it (``bot.pipeline.deliveries``).

A delivery is unique per ``(channel, dedup_key)``: a redelivery is one ignored insert. Parsing
claims deliveries with a lease, like the inbox's lanes, so a delivery stored by a process that
died before parsing it is parsed by the next start or by another replica once the lease runs
out. A delivery is claimable only when no earlier delivery of its ``(channel, order_key)`` is
still pending under someone's lease (or held for a retry): a conversation's deliveries are
parsed in the order they arrived, whichever process parses them. Claims are serialized (SQLite's
write lock; a transaction-scoped advisory lock on PostgreSQL) so two claims never see each
other's uncommitted leases as free.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, exists, func, or_, select, text, update
from sqlalchemy.engine import Connection

from bot.domain import new_id, now
from bot.store.database import Database
from bot.store.schema import deliveries
from bot.store.statements import PENDING

DONE = "done"
FAILED = "failed"
# A constant key for PostgreSQL's transaction-scoped advisory lock serializing claims.
_CLAIM_LOCK = text("SELECT pg_advisory_xact_lock(7301120017)")

_earlier = deliveries.alias()  # Core's alias, as the ORM's ``aliased`` gives for a table
_FREE = or_(
    deliveries.c.lease_expires_at.is_(None), deliveries.c.lease_expires_at < bindparam("at")
)
CLAIMABLE = (
    select(
        deliveries.c.id,
        deliveries.c.channel,
        deliveries.c.dedup_key,
        deliveries.c.order_key,
        deliveries.c.body,
        deliveries.c.attempts,
    )
    .where(
        deliveries.c.status == PENDING,
        _FREE,
        ~exists().where(
            _earlier.c.status == PENDING,
            _earlier.c.channel == deliveries.c.channel,
            _earlier.c.order_key == deliveries.c.order_key,
            _earlier.c.id < deliveries.c.id,
            _earlier.c.lease_expires_at >= bindparam("at"),
        ),
    )
    .order_by(deliveries.c.id)
    .limit(bindparam("limit"))
)
LEASE = (
    update(deliveries)
    .where(deliveries.c.id.in_(bindparam("ids", expanding=True)))
    .values(lease_token=bindparam("token"), lease_expires_at=bindparam("expires"))
)
_OURS = and_(
    deliveries.c.id.in_(bindparam("ids", expanding=True)),
    deliveries.c.lease_token == bindparam("token"),
    deliveries.c.status == PENDING,
)
DONE_STATEMENT = (
    update(deliveries)
    .where(_OURS)
    .values(
        status=DONE,
        body=None,
        lease_token=None,
        lease_expires_at=None,
        finished_at=bindparam("finished_at"),
    )
)
RELEASE = update(deliveries).where(_OURS).values(lease_token=None, lease_expires_at=None)


_COLUMNS = ("channel", "dedup_key", "order_key", "body", "status", "attempts", "received_at")
# Rows per SQLite statement: 7,000 bound values, within the 32,766 SQLite allows by default.
_SQLITE_ROWS = 1000


@lru_cache(maxsize=64)
def _sqlite_insert(count: int) -> str:
    """SQLite's insert of ``count`` rows, skipping the stored ones and returning the new."""
    values = ", ".join(["(" + ", ".join("?" * len(_COLUMNS)) + ")"] * count)
    return (
        f"INSERT INTO {deliveries.name} ({', '.join(_COLUMNS)}) VALUES {values} "
        "ON CONFLICT (channel, dedup_key) DO NOTHING RETURNING id, channel, dedup_key"
    )


def _ids(rows: Sequence[dict[str, Any]], inserted: dict[tuple[str, str], int]) -> list[int | None]:
    """Each row's new id, None for one stored before (the first of two alike is the new one)."""
    return [inserted.pop((row["channel"], row["dedup_key"]), None) for row in rows]


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A pending delivery as a claim hands it out."""

    id: int
    channel: str
    dedup_key: str
    order_key: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class DeliveryClaim:
    token: str
    deliveries: tuple[StoredDelivery, ...]


class AckBatch:
    """Deliveries stored on SQLite's writer thread as platforms wait for their answer: a unit
    there takes every delivery queued when it starts (at most ``batch``), inserts them in one
    transaction and hands each caller its outcome — all of them in one event-loop callback.

    Queued in the event loop instead (``bot.pipeline.deliveries.GroupCommit``), each batch
    waited for its leader to resume before the next one could start — one loop pass, a few ms
    of turns' work under load — and each follower one pass more after its leader. Here the
    next batch is queued (as urgent, ahead of turn units) the moment a delivery arrives while
    none waits to be taken, so it starts on the writer thread right after the batch before it.
    A caller is answered only after the transaction holding its row committed."""

    def __init__(self, deliveries: Deliveries, *, batch: int):
        self._deliveries = deliveries
        self._batch = batch
        self._lock = threading.Lock()
        self._queue: list[tuple[dict[str, Any], asyncio.Future[int | None]]] = []
        self._armed = False  # a unit is queued that has not taken its rows yet

    async def put(self, row: dict[str, Any]) -> int | None:
        """Store ``row`` (``Deliveries.row``); its new id, None when it was stored before."""
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._queue.append((row, done))
            arm, self._armed = not self._armed, True
        if arm:
            try:
                self._deliveries.db.queue_on_writer(self._unit, urgent=True)
            except BaseException as exc:  # a closed database: nothing queued will be written
                with self._lock:
                    dropped, self._queue, self._armed = self._queue, [], False
                _fail(exc, [entry for entry in dropped if entry[1] is not done])
                raise
        return await done

    def _unit(self) -> None:
        """On the writer thread: write what is queued now; answer its callers."""
        with self._lock:
            taken, self._queue = self._queue[: self._batch], self._queue[self._batch :]
            self._armed = bool(self._queue)
        if self._armed:  # more than a batch waiting: the rest right after this one
            try:
                self._deliveries.db.queue_on_writer(self._unit, urgent=True)
            except RuntimeError as exc:
                with self._lock:
                    dropped, self._queue, self._armed = self._queue, [], False
                _answer(_fail, exc, dropped)
        # A caller cancelled before its row is written is left out, as if never queued.
        taken = [entry for entry in taken if not entry[1].cancelled()]
        if not taken:
            return
        try:
            ids = self._deliveries.write_on_writer([row for row, _ in taken])
        except BaseException as exc:  # noqa: BLE001 — handed to every caller of the batch
            failure = exc if isinstance(exc, Exception) else RuntimeError("write interrupted")
            _answer(_fail, failure, taken)
        else:
            _answer(_resolve, ids, taken)


_Entries = list[tuple[dict[str, Any], asyncio.Future[int | None]]]
_Outcome = TypeVar("_Outcome")


def _answer(settle: Callable[[_Outcome, _Entries], None], outcome: _Outcome, entries: _Entries) -> None:
    """``settle(outcome, entries)`` in their event loop (one callback), from the writer thread."""
    if entries:
        loop = entries[0][1].get_loop()
        with suppress(RuntimeError):  # closed meanwhile: nobody is waiting any more
            loop.call_soon_threadsafe(settle, outcome, entries)


def _resolve(ids: list[int | None], entries: _Entries) -> None:
    for (_row, done), id_ in zip(entries, ids, strict=True):
        if not done.done():
            done.set_result(id_)


def _fail(exc: BaseException, entries: _Entries) -> None:
    for _row, done in entries:
        if not done.done():
            done.set_exception(exc)


class Deliveries:
    """Stored raw deliveries, their claims and their outcome."""

    def __init__(self, db: Database):
        self.db = db
        self._insert = db.insert_ignore(deliveries, ["channel", "dedup_key"]).returning(
            deliveries.c.id, deliveries.c.channel, deliveries.c.dedup_key
        )

    @staticmethod
    def row(channel: str, dedup_key: str, order_key: str, body: bytes) -> dict[str, Any]:
        return {
            "channel": channel,
            "dedup_key": dedup_key,
            "order_key": order_key,
            "body": body,
            "status": "pending",
            "attempts": 0,
            "received_at": now(),
        }

    def write_on_writer(self, rows: Sequence[dict[str, Any]]) -> list[int | None]:
        """``write`` on SQLite, run on its writer thread (inside a unit queued there): one
        statement through the driver (``Database.driver_write``), the rows in one multi-row
        VALUES, the ones new here returned (a batch over SQLite's bound variables is split,
        each part atomic, as on PostgreSQL)."""
        inserted: dict[tuple[str, str], int] = {}
        for start in range(0, len(rows), _SQLITE_ROWS):
            part = rows[start : start + _SQLITE_ROWS]
            params = [row[name] for row in part for name in _COLUMNS]
            found = self.db.driver_write(_sqlite_insert(len(part)), params)
            inserted.update(((channel, key), id_) for id_, channel, key in found)
        return _ids(rows, inserted)

    async def write(self, rows: Sequence[dict[str, Any]]) -> list[int | None]:
        """Insert ``rows`` (``row``) in one transaction; for each, its new id, or None when
        that delivery was stored before (or twice in this batch: the first one is new)."""
        if self.db.is_sqlite:
            batch = list(rows)
            return await self.db.run_on_writer(lambda: self.write_on_writer(batch), urgent=True)

        def work(conn: Connection) -> list[int | None]:
            result = conn.execute(self._insert, list(rows))
            return _ids(rows, {(r.channel, r.dedup_key): r.id for r in result})

        # Urgent: the platform's acknowledgement waits on it, not behind turns' writes. One
        # statement (a batch too large for one is split, each part atomic: a part that fails
        # fails the batch's acknowledgements, and the redelivery of a stored part is ignored).
        return await self.db.run_each(work, urgent=True)

    async def claim(self, *, limit: int, lease_seconds: float) -> DeliveryClaim | None:
        """Lease up to ``limit`` pending deliveries, oldest first, none of which waits behind
        an earlier delivery of its order key that is still leased; None when there are none."""
        at = now()
        token = new_id("dlv")

        def work(conn: Connection) -> DeliveryClaim | None:
            if not self.db.is_sqlite:
                conn.execute(_CLAIM_LOCK)
            rows = conn.execute(CLAIMABLE, {"at": at, "limit": limit}).all()
            if not rows:
                return None
            conn.execute(
                LEASE, {"ids": [r.id for r in rows], "token": token, "expires": at + lease_seconds}
            )
            return DeliveryClaim(
                token,
                tuple(
                    StoredDelivery(
                        r.id, r.channel, r.dedup_key, r.order_key, bytes(r.body or b""), r.attempts
                    )
                    for r in rows
                ),
            )

        return await self.db.run_tx(work)

    async def finish(
        self,
        claim: DeliveryClaim,
        done: Sequence[int],
        failed: Sequence[tuple[int, str]],
        *,
        unreadable: Sequence[tuple[int, str]] = (),
        retry_after: float,
        max_attempts: int,
    ) -> None:
        """Record a claim's outcome in one transaction: ``done`` ones are parsed (their body
        dropped); ``failed`` ones (id, error) are held until ``retry_after`` seconds from now —
        which keeps the later deliveries of their order key waiting — and marked failed for
        good after ``max_attempts`` tries; ``unreadable`` ones (id, reason) are marked failed
        at once (kept, body and all, for an operator). Deliveries of the claim in none of them
        are given back."""
        at = now()
        settled = {*done, *(delivery_id for delivery_id, _ in [*failed, *unreadable])}
        untouched = [d.id for d in claim.deliveries if d.id not in settled]

        def work(conn: Connection) -> None:
            if done:
                conn.execute(
                    DONE_STATEMENT, {"ids": list(done), "token": claim.token, "finished_at": at}
                )
            if untouched:
                conn.execute(RELEASE, {"ids": untouched, "token": claim.token})
            for delivery_id, error in failed:
                ours = and_(deliveries.c.id == delivery_id, deliveries.c.lease_token == claim.token)
                conn.execute(
                    update(deliveries)
                    .where(ours)
                    .values(
                        attempts=deliveries.c.attempts + 1,
                        error=error[:2000],
                        lease_expires_at=at + retry_after,
                    )
                )
                conn.execute(
                    update(deliveries)
                    .where(ours, deliveries.c.attempts >= max_attempts)
                    .values(status=FAILED, lease_token=None, lease_expires_at=None, finished_at=at)
                )
            for delivery_id, reason in unreadable:
                ours = and_(deliveries.c.id == delivery_id, deliveries.c.lease_token == claim.token)
                conn.execute(
                    update(deliveries)
                    .where(ours)
                    .values(
                        status=FAILED,
                        attempts=deliveries.c.attempts + 1,
                        error=reason[:2000],
                        lease_token=None,
                        lease_expires_at=None,
                        finished_at=at,
                    )
                )

        await self.db.run_tx(work)

    async def renew(self, claim: DeliveryClaim, lease_seconds: float) -> None:
        ids = [d.id for d in claim.deliveries]
        statement = (
            update(deliveries)
            .where(deliveries.c.id.in_(ids), deliveries.c.lease_token == claim.token)
            .values(lease_expires_at=now() + lease_seconds)
        )
        await self.db.run_tx(lambda conn: conn.execute(statement))

    async def counts(self) -> dict[str, int]:
        """Deliveries by status (``pending``, ``done``, ``failed``)."""
        query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        return await self.db.run_read(
            lambda conn: {status: count for status, count in conn.execute(query)}
        )

    async def prune(self, *, older_than: float) -> int:
        """Forget parsed deliveries finished more than ``older_than`` seconds ago (a redelivery
        after that is parsed again, and its messages are still deduplicated by the inbox)."""
        statement = deliveries.delete().where(
            deliveries.c.status == DONE, deliveries.c.finished_at < now() - older_than
        )
        return int(await self.db.run_tx(lambda conn: conn.execute(statement).rowcount))
