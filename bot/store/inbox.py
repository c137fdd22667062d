"""The inbox and its lanes: every accepted inbound message, durable and unique per
``(source, dedup_key)``, queued on its thread's lane; a lane is leased to one worker at a time
and carries every pending message of its thread.

Writing deliveries together (the group commit) is ``bot.pipeline.inbox``; this module holds
the statement that writes one batch of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import TextClause

from bot.domain import JSON, InboundMessage, InboxStatus, new_id, now
from bot.store import folded
from bot.store import statements as st
from bot.store.database import INBOX_NOTICE, Database
from bot.store.errors import LeaseLost
from bot.store.schema import inbox, lanes

if TYPE_CHECKING:
    from bot.store.runs import PreparedTurn

log = logging.getLogger(__name__)

# Why an older message of a delivery is stored without a turn of its own.
CONTEXT_ONLY = "an older message of a delivery whose newest message was already taken"


def lane_key(agent_slug: str, thread_external_id: str) -> str:
    return f"{agent_slug}|{thread_external_id}"


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    lane: str
    message: InboundMessage
    attempts: int
    received_at: float


@dataclass(frozen=True, slots=True)
class LaneClaim:
    lane: str
    token: str
    items: tuple[InboxItem, ...]
    # The lane's last lease ran out rather than being given back (a worker died mid-turn) or
    # held it for a failed turn's backoff.
    recovered: bool = False
    # What a turn on the lane reads, read in the claim's own transaction (None: not read).
    prepared: PreparedTurn | None = None

    @property
    def retry(self) -> bool:
        """An earlier try at these messages may have shown the customer something."""
        return self.recovered or any(item.attempts for item in self.items)


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One stored delivery and where it stands (batch triage watches these)."""

    id: int
    source: str
    dedup_key: str
    status: InboxStatus
    attempts: int
    run_id: str | None
    error: str | None
    received_at: float
    finished_at: float | None


_INBOX_ROW_COLUMNS = (
    inbox.c.id, inbox.c.source, inbox.c.dedup_key, inbox.c.status, inbox.c.attempts,
    inbox.c.run_id, inbox.c.error, inbox.c.received_at, inbox.c.finished_at,
)


def _inbox_item(row: RowMapping) -> InboxItem:
    return InboxItem(
        id=row["id"],
        lane=row["lane"],
        message=InboundMessage.from_json(row["payload"]),
        attempts=row["attempts"],
        received_at=row["received_at"],
    )


def _inbox_row(row: RowMapping) -> InboxRow:
    return InboxRow(
        id=row["id"],
        source=row["source"],
        dedup_key=row["dedup_key"],
        status=InboxStatus(row["status"]),
        attempts=row["attempts"],
        run_id=row["run_id"],
        error=row["error"],
        received_at=row["received_at"],
        finished_at=row["finished_at"],
    )


def release_lane_in(
    conn: Connection, claim: LaneClaim, at: float, hold_until: float | None = None
) -> None:
    """Give the claim's lane back inside a transaction (or hold it until ``hold_until``);
    raises ``LeaseLost`` when the lease is no longer the claim's."""
    result = conn.execute(
        st.RELEASE_LANE,
        {
            "lane": claim.lane,
            "token": claim.token,
            "lease_token": None if hold_until is None else claim.token,
            "lease_expires_at": hold_until,
            "touched_at": at,
        },
    )
    if result.rowcount != 1:
        raise LeaseLost(f"lease on {claim.lane} was lost")


def _news(
    batch: Sequence[list[dict[str, Any]]], inserted: dict[tuple[str, str], int]
) -> tuple[list[list[bool]], list[int], dict[str, float]]:
    """Of a batch of deliveries written (``inserted``: the rows new in the store, by key): for
    each delivery whether each message was new, the new rows to keep without a turn (older
    messages of a delivery whose newest was not new), and the lanes of the new turns."""
    # The same message in two deliveries of one batch: new for the first only.
    claimed: set[tuple[str, str]] = set()
    news: list[list[bool]] = []
    context_only: list[int] = []
    new_lanes: dict[str, float] = {}
    for rows in batch:
        keys = [(row["source"], row["dedup_key"]) for row in rows]
        new = [key in inserted and key not in claimed for key in keys]
        claimed.update(keys)
        news.append(new)
        if not new[-1]:
            context_only += [inserted[key] for key, fresh in zip(keys, new) if fresh]
        for row, fresh in zip(rows, new):
            if fresh and new[-1]:
                new_lanes[row["lane"]] = row["received_at"]
    return news, context_only, new_lanes


def _leased_of(
    rows: Iterable[RowMapping], token: str
) -> tuple[dict[str, tuple[str, bool]], dict[str, list[InboxItem]]]:
    """The lanes a folded claim leased under ``token`` (whether each lease had run out) and
    the pending messages of each, from its rows (``folded.CLAIM_LANES``)."""
    leased: dict[str, tuple[str, bool]] = {}
    items: dict[str, list[InboxItem]] = {}
    for row in rows:
        lane = row["claimed_lane"]
        leased[lane] = (token, row["was_expiring"] is not None)
        if row["id"] is not None:
            items.setdefault(lane, []).append(_inbox_item(row))
    return leased, items


class _PrepareFailed(Exception):
    """A claim's ``prepare`` failed on a try without savepoints: the claim is taken again
    with one savepoint per lane."""


def _prepared(
    conn: Connection,
    prepare: Callable[[Connection, LaneClaim], PreparedTurn | None],
    claim: LaneClaim,
    *,
    guarded: bool,
) -> PreparedTurn | None:
    """``prepare`` for one claim. ``guarded``: in a savepoint, so that a failure undoes its
    writes only and the turn then reads its inputs on its own (where the failure is handled
    as it always was); unguarded, a failure raises ``_PrepareFailed``."""
    if not guarded:
        try:
            return prepare(conn, claim)
        except Exception as exc:
            raise _PrepareFailed from exc
    try:
        with conn.begin_nested():
            return prepare(conn, claim)
    except Exception:
        log.debug("reading the turn inputs of %s with its claim failed", claim.lane, exc_info=True)
        return None


class Inbox:
    """Stored deliveries, lane claims and their release."""

    def __init__(self, db: Database):
        self.db = db
        self._insert_messages = db.insert_ignore(inbox, ["source", "dedup_key"]).returning(
            inbox.c.id, inbox.c.source, inbox.c.dedup_key
        )
        self._insert_lanes = db.insert_ignore(lanes, ["key"])

    @staticmethod
    def delivery_rows(messages: Sequence[tuple[InboundMessage, str]]) -> list[dict[str, Any]]:
        """The inbox rows of one delivery's messages (oldest first, each with its agent slug)."""
        at = now()
        return [
            {
                "source": message.source,
                "dedup_key": message.dedup_key,
                "lane": lane_key(agent_slug, message.thread_external_id),
                "payload": {**message.to_json(), "agent_slug": agent_slug},
                "status": InboxStatus.PENDING.value,
                "attempts": 0,
                "received_at": at,
            }
            for message, agent_slug in messages
        ]

    async def write_deliveries(self, batch: Sequence[list[dict[str, Any]]]) -> list[list[bool]]:
        """Write several deliveries' rows (``delivery_rows``) in one transaction; for each
        delivery, whether each of its messages was new.

        Only a delivery's newest message starts a turn: when that one was already stored (an
        earlier delivery carried it and started its turn), older messages new here are kept as
        skipped, never answered on their own."""

        rows = [row for rows in batch for row in rows]
        if not self.db.is_sqlite and all(len(rows) == 1 for rows in batch):
            # No delivery has older messages to keep without a turn: nothing to decide between
            # writes, so on PostgreSQL the batch is one statement, atomic on its own.
            params = {
                "rows": folded.rows_json(rows),
                "notice": f"{INBOX_NOTICE}|{self.db.origin}",
            }
            found = await self.db.run_each(
                lambda conn: list(conn.execute(folded.WRITE_MESSAGES, params))
            )
            return _news(batch, {(row.source, row.dedup_key): row.id for row in found})[0]

        # executemany with RETURNING: SQLAlchemy renders it as multi-row VALUES from one cached
        # statement ("insertmanyvalues"); skipped duplicates return no row.
        def work(conn: Connection) -> list[list[bool]]:
            result = conn.execute(self._insert_messages, rows)
            inserted = {(row.source, row.dedup_key): row.id for row in result}
            news, context_only, new_lanes = _news(batch, inserted)
            if context_only:
                conn.execute(
                    st.INBOX_CONTEXT_ONLY,
                    {"ids": context_only, "error": CONTEXT_ONLY, "finished_at": now()},
                )
            if new_lanes:
                conn.execute(
                    self._insert_lanes,
                    [{"key": key, "touched_at": at} for key, at in new_lanes.items()],
                )
                self.db.notify_in(conn, INBOX_NOTICE)
            return news

        return await self.db.run_tx(work)

    async def inbox_seen(self, source: str, dedup_key: str) -> bool:
        query = select(inbox.c.id).where(inbox.c.source == source, inbox.c.dedup_key == dedup_key)
        row = await self.db.run_read(lambda conn: conn.execute(query).first())
        return row is not None

    async def claim_lanes(
        self,
        *,
        limit: int,
        lease_seconds: float,
        prepare: Callable[[Connection, LaneClaim], PreparedTurn | None] | None = None,
    ) -> list[LaneClaim]:
        """Take up to ``limit`` lanes with pending messages whose lease is free or expired, in
        one write transaction.

        Each claim carries every pending message of its lane: messages that arrived while an
        earlier turn ran are answered together. ``prepare`` reads (or starts) what a turn on
        the lane needs inside the same transaction, each lane in a savepoint of its own: what
        it returns rides on the claim as ``prepared``; when it fails or returns None the turn
        reads its inputs itself.

        The savepoints are paid only when needed: a claim is first taken without them, and
        only when a ``prepare`` fails is that transaction rolled back and the claim taken
        again with them — what a failure leaves is the same, and the common case saves two
        statements (and on PostgreSQL two round trips) per lane.

        The claim loops call this only when woken by new work (or on their slow poll), so
        there is no separate read to spare SQLite's write lock on an empty poll.
        """
        if limit <= 0:
            return []
        at = now()

        lease = self._lease_lanes_folded if not self.db.is_sqlite else self._lease_lanes

        def work(conn: Connection, guarded: bool) -> list[LaneClaim]:
            leased, items = lease(conn, at, limit, lease_seconds)
            claims: list[LaneClaim] = []
            for key, (token, expired) in leased.items():
                if key not in items:
                    release_lane_in(conn, LaneClaim(key, token, ()), at)
                    continue
                claim = LaneClaim(key, token, tuple(items[key]), recovered=expired)
                if prepare is not None:
                    prepared = _prepared(conn, prepare, claim, guarded=guarded)
                    claim = replace(claim, prepared=prepared)
                claims.append(claim)
            return claims

        try:
            return await self.db.run_tx(lambda conn: work(conn, False))
        except _PrepareFailed as failed:
            log.debug("reading turn inputs with a claim failed; claiming again with savepoints",
                      exc_info=failed.__cause__)
        return await self.db.run_tx(lambda conn: work(conn, True))

    @staticmethod
    def _lease_lanes(
        conn: Connection, at: float, limit: int, lease_seconds: float
    ) -> tuple[dict[str, tuple[str, bool]], dict[str, list[InboxItem]]]:
        """Lease up to ``limit`` claimable lanes: each lane leased (its token, and whether its
        last lease ran out) and the pending messages of each, in three statements."""
        found = [
            (r[0], r[1] is not None)
            for r in conn.execute(st.CLAIMABLE_LANES, {"at": at, "limit": limit})
        ]
        if not found:
            return {}, {}
        token = new_id("lse")
        taken = set(
            conn.execute(
                st.LEASE_LANES,
                {
                    "lanes": [key for key, _ in found],
                    "at": at,
                    "token": token,
                    "expires": at + lease_seconds,
                },
            ).scalars()
        )
        leased = {key: (token, expired) for key, expired in found if key in taken}
        if not leased:
            return {}, {}
        items: dict[str, list[InboxItem]] = {}
        for row in conn.execute(st.PENDING_OF_LANES, {"lanes": list(leased)}).mappings():
            items.setdefault(row["lane"], []).append(_inbox_item(row))
        return leased, items

    @staticmethod
    def _lease_lanes_folded(
        conn: Connection, at: float, limit: int, lease_seconds: float
    ) -> tuple[dict[str, tuple[str, bool]], dict[str, list[InboxItem]]]:
        """``_lease_lanes`` in one statement (PostgreSQL: ``folded.CLAIM_LANES``)."""
        token = new_id("lse")
        params = {"at": at, "limit": limit, "token": token, "expires": at + lease_seconds}
        return _leased_of(conn.execute(folded.CLAIM_LANES, params).mappings(), token)

    async def claim_lanes_folded(
        self,
        statement: TextClause,
        params: dict[str, Any],
        *,
        limit: int,
        lease_seconds: float,
        prepared: Callable[[RowMapping], PreparedTurn | None],
    ) -> list[LaneClaim]:
        """``claim_lanes`` on PostgreSQL as ONE statement sent without a transaction around it
        (atomic on its own: one exchange with the server where ``BEGIN``, the claim, the reads
        of ``prepare`` and ``COMMIT`` were one each). ``statement`` leases and reads as
        ``folded.CLAIM_LANES`` does (given ``params`` besides the lease's own) and, on a
        lane's first row, what a turn on it reads: ``prepared`` makes it the claim's."""
        if limit <= 0:
            return []
        at = now()
        token = new_id("lse")
        params = {**params, "at": at, "limit": limit, "token": token, "expires": at + lease_seconds}
        rows = await self.db.run_each(
            lambda conn: list(conn.execute(statement, params).mappings())
        )
        leased, items = _leased_of(rows, token)
        first: dict[str, RowMapping] = {}
        for row in rows:
            first.setdefault(row["claimed_lane"], row)

        def prepared_or_none(lane: str) -> PreparedTurn | None:
            # The claim is committed: a lane whose reads cannot be made out is still the
            # claim's, and its turn reads them itself (as after a failed ``prepare``).
            try:
                return prepared(first[lane])
            except Exception:
                log.warning("reading the turn inputs of %s with its claim failed", lane,
                            exc_info=True)
                return None

        claims = [
            LaneClaim(key, token, tuple(items[key]), recovered=expired,
                      prepared=prepared_or_none(key))
            for key, (_, expired) in leased.items()
            if key in items
        ]
        # A lane found with live messages has them in the same snapshot; should one come
        # without, it is given back rather than held until its lease runs out.
        empty = [LaneClaim(key, token, ()) for key in leased if key not in items]
        if empty:

            def give_back(conn: Connection) -> None:
                for claim in empty:
                    release_lane_in(conn, claim, at)

            await self.db.run_tx(give_back)
        return claims

    async def renew_lane(self, claim: LaneClaim, lease_seconds: float) -> bool:
        statement = (
            update(lanes)
            .where(lanes.c.key == claim.lane, lanes.c.lease_token == claim.token)
            .values(lease_expires_at=now() + lease_seconds)
        )
        return bool(await self.db.run_tx(lambda conn: conn.execute(statement).rowcount) == 1)

    async def release_lane(
        self,
        claim: LaneClaim,
        *,
        status: InboxStatus,
        error: str | None = None,
        retry_after: float | None = None,
        max_attempts: int = 5,
    ) -> None:
        """Give a lane back without a run: messages skipped, or put back for a later retry.

        With ``status=PENDING`` the messages' attempts grow and, past ``max_attempts``, they are
        marked failed so one poisonous message cannot spin forever.
        """
        at = now()
        ids = [item.id for item in claim.items]

        def work(conn: Connection) -> None:
            release_lane_in(conn, claim, at, hold_until=at + retry_after if retry_after else None)
            if status is InboxStatus.PENDING:
                conn.execute(
                    update(inbox)
                    .where(inbox.c.id.in_(ids))
                    .values(attempts=inbox.c.attempts + 1, error=error)
                )
                conn.execute(
                    update(inbox)
                    .where(inbox.c.id.in_(ids), inbox.c.attempts >= max_attempts)
                    .values(status=InboxStatus.FAILED.value, finished_at=at)
                )
            else:
                conn.execute(
                    update(inbox)
                    .where(inbox.c.id.in_(ids))
                    .values(status=status.value, error=error, finished_at=at)
                )

        await self.db.run_tx(work)

    async def inbox_counts(self) -> dict[str, int]:
        query = select(inbox.c.status, func.count()).group_by(inbox.c.status)
        return await self.db.run_read(
            lambda conn: {status: count for status, count in conn.execute(query)}
        )

    async def inbox_items(self, *, status: InboxStatus | None = None, limit: int = 100) -> list[JSON]:
        query = select(inbox).order_by(inbox.c.id).limit(limit)
        if status is not None:
            query = query.where(inbox.c.status == status.value)
        return await self.db.run_read(
            lambda conn: [dict(r) for r in conn.execute(query).mappings()]
        )

    async def inbox_rows(self, keys: Sequence[tuple[str, str]]) -> list[InboxRow]:
        """The inbox rows of these ``(source, dedup_key)`` deliveries (missing ones left out)."""
        by_source: dict[str, list[str]] = {}
        for source, key in keys:
            by_source.setdefault(source, []).append(key)

        def work(conn: Connection) -> list[InboxRow]:
            found: list[InboxRow] = []
            for source, wanted in by_source.items():
                for start in range(0, len(wanted), st.IN_CHUNK):
                    rows = conn.execute(
                        select(*_INBOX_ROW_COLUMNS).where(
                            inbox.c.source == source,
                            inbox.c.dedup_key.in_(wanted[start : start + st.IN_CHUNK]),
                        )
                    ).mappings()
                    found.extend(_inbox_row(r) for r in rows)
            return found

        return await self.db.run_read(work)
