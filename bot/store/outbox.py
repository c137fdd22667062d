"""The outbox: actions a committed turn decided, leased to one sender at a time.

A claim's ``token`` fences the sender's writes: once its lease has passed to another sender,
what the first reports is refused (and noted), so an action is recorded once in effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql import ColumnElement

from bot.domain import Action, ActionKind, OutboxStatus, Thread, new_id, now
from bot.store import statements as st
from bot.store.database import Database
from bot.store.errors import LeaseLost
from bot.store.rows import to_action, to_thread
from bot.store.schema import outbox, threads


@dataclass(frozen=True, slots=True)
class ActionClaim:
    """An action leased to one sender, with the thread it acts on. ``token`` fences the
    sender's writes: once the lease has passed to another sender, they are refused."""

    action: Action
    thread: Thread
    token: str


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    action: Action
    status: OutboxStatus
    attempts: int
    remote_id: str | None
    last_error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ActionState:
    """Where one outbox action stands, without its payload (batch triage polls these)."""

    id: str
    run_id: str
    kind: ActionKind
    status: OutboxStatus
    attempts: int
    remote_id: str | None
    last_error: str | None


def pending_rows(actions: Sequence[Action], at: float) -> list[dict[str, Any]]:
    """The outbox rows of a turn's actions, due at once and free (``INSERT_ACTION``
    parameters)."""
    return [
        {
            "id": action.id,
            "run_id": action.run_id,
            "thread_id": action.thread_id,
            "channel": action.channel,
            "kind": action.kind.value,
            "payload": action.to_json(),
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": at,
            "lease_token": None,
            "lease_expires_at": None,
            "created_at": at,
            "updated_at": at,
        }
        for action in actions
    ]


def _held_by(claim: ActionClaim) -> ColumnElement[bool]:
    """The claim's action, still pending and still leased to the claim. A lease that ran out
    but was not taken by anyone yet still counts: nobody else can have sent in between."""
    return and_(
        outbox.c.id == claim.action.id,
        outbox.c.lease_token == claim.token,
        outbox.c.status == OutboxStatus.PENDING.value,
    )


def _outbox_entry(row: RowMapping) -> OutboxEntry:
    return OutboxEntry(
        action=to_action(row, attempt=row["attempts"]),
        status=OutboxStatus(row["status"]),
        attempts=row["attempts"],
        remote_id=row["remote_id"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _claimed(row: RowMapping, token: str) -> ActionClaim:
    """A claimed action's row, with its thread's columns (``thr__``), as the claim."""
    thread_row = {c.name: row[f"thr__{c.name}"] for c in threads.c}
    # ``attempt`` counts earlier tries that may have reached the platform.
    action = to_action(row, attempt=row["attempts"] - 1)
    return ActionClaim(action, to_thread(thread_row), token)


def _record_refusal(conn: Connection, claim: ActionClaim, outcome: str, at: float) -> None:
    conn.execute(
        update(outbox)
        .where(outbox.c.id == claim.action.id)
        .values(
            last_error=(
                f"a sender whose lease had run out reported it {outcome}; not applied"
            )[:2000],
            updated_at=at,
        )
    )


class Outbox:
    """Claims, leases and outcomes of outbox actions."""

    def __init__(self, db: Database):
        self.db = db

    async def claim_actions(self, *, limit: int, lease_seconds: float) -> list[ActionClaim]:
        """Due actions, at most the oldest unfinished one per thread, leased to this caller,
        each with the thread it acts on.

        A claim counts as a try: an action whose lease ran out while its sender was still at
        work comes back with ``attempt > 0``, so its connector looks for the earlier send
        before sending again.
        """
        at = now()
        if not self.db.is_sqlite:
            # One statement, atomic by itself: no transaction around it.
            token = new_id("lse")
            params = {"at": at, "limit": limit, "token": token, "expires": at + lease_seconds}
            return await self.db.run_each(
                lambda conn: [
                    _claimed(row, token)
                    for row in conn.execute(st.CLAIM_ACTIONS, params).mappings()
                ]
            )

        def work(conn: Connection) -> list[ActionClaim]:
            claimed: list[ActionClaim] = []
            seqs = [r[0] for r in conn.execute(st.CLAIM_DUE_ACTIONS, {"at": at, "limit": limit})]
            for seq in seqs:
                token = new_id("lse")
                result = conn.execute(
                    st.LEASE_ACTION,
                    {"claimed_seq": seq, "at": at, "token": token, "expires": at + lease_seconds},
                )
                if result.rowcount != 1:
                    continue
                row = conn.execute(st.ACTION_WITH_THREAD, {"claimed_seq": seq}).mappings().one()
                claimed.append(_claimed(row, token))
            return claimed

        return await self.db.run_tx(work)

    async def renew_action(self, claim: ActionClaim, lease_seconds: float) -> bool:
        """Extend the claim's lease; False when it is no longer this claim's (expired and
        taken, or the action finished)."""
        values = {"action": claim.action.id, "token": claim.token, "expires": now() + lease_seconds}
        return bool(
            await self.db.run_tx(lambda conn: conn.execute(st.RENEW_ACTION, values).rowcount) == 1
        )

    async def action_attempted(self, claim: ActionClaim) -> None:
        """Count one more in-process try of a claimed action before it is made. Raises
        ``LeaseLost`` (and counts nothing) when the lease is no longer the claim's."""
        statement = (
            update(outbox)
            .where(_held_by(claim))
            .values(attempts=outbox.c.attempts + 1, updated_at=now())
        )
        if await self.db.run_tx(lambda conn: conn.execute(statement).rowcount) != 1:
            raise LeaseLost(f"lease on action {claim.action.id} was lost")

    async def action_done(self, claim: ActionClaim, remote_id: str | None) -> bool:
        """Mark the action sent. Refused (False) when the claim's lease has passed to another
        sender, who owns the action now: the refusal is kept in ``last_error`` instead, so an
        operator can see that two senders were at it."""
        at = now()
        params = {
            "action": claim.action.id,
            "token": claim.token,
            "remote_id": remote_id,
            "at": at,
        }

        def work(conn: Connection) -> bool:
            if conn.execute(st.ACTION_DONE, params).rowcount == 1:
                return True
            _record_refusal(conn, claim, f"sent as {remote_id!r}" if remote_id else "sent", at)
            return False

        # The fenced update decides; the refusal is a note, whatever happens in between (no
        # lock taken by a refused update would be held for it anyway).
        return await self.db.run_each(work)

    async def action_failed(
        self, claim: ActionClaim, error: str, *, retry_at: float, max_attempts: int
    ) -> OutboxStatus | None:
        """Keep the error; retry at ``retry_at`` or dead-letter once attempts run out. None
        (nothing changed but the note of the refusal) when the lease has passed to another
        sender."""
        at = now()

        def work(conn: Connection) -> OutboxStatus | None:
            attempts = conn.execute(
                select(outbox.c.attempts).where(_held_by(claim))
            ).scalar_one_or_none()
            if attempts is None:
                _record_refusal(conn, claim, f"failed ({error[:500]})", at)
                return None
            status = OutboxStatus.DEAD if attempts >= max_attempts else OutboxStatus.PENDING
            conn.execute(
                update(outbox)
                .where(_held_by(claim))
                .values(
                    status=status.value,
                    last_error=error[:2000],
                    next_attempt_at=retry_at,
                    lease_token=None,
                    lease_expires_at=None,
                    updated_at=at,
                )
            )
            return status

        return await self.db.run_tx(work)

    async def outbox_entries(
        self,
        *,
        status: OutboxStatus | None = None,
        thread_id: str | None = None,
        limit: int = 100,
    ) -> list[OutboxEntry]:
        query = select(outbox).order_by(outbox.c.seq).limit(limit)
        if status is not None:
            query = query.where(outbox.c.status == status.value)
        if thread_id is not None:
            query = query.where(outbox.c.thread_id == thread_id)
        return await self.db.run_read(
            lambda conn: [_outbox_entry(r) for r in conn.execute(query).mappings()]
        )

    async def outbox_counts(self) -> dict[str, int]:
        query = select(outbox.c.status, func.count()).group_by(outbox.c.status)
        return await self.db.run_read(
            lambda conn: {status: count for status, count in conn.execute(query)}
        )

    async def action_states(self, run_ids: Sequence[str]) -> list[ActionState]:
        """Where every outbox action of these runs stands, in order."""
        ids = list(dict.fromkeys(run_ids))
        columns = (outbox.c.id, outbox.c.run_id, outbox.c.kind, outbox.c.status,
                   outbox.c.attempts, outbox.c.remote_id, outbox.c.last_error)

        def work(conn: Connection) -> list[ActionState]:
            found: list[ActionState] = []
            for start in range(0, len(ids), st.IN_CHUNK):
                rows = conn.execute(
                    select(*columns)
                    .where(outbox.c.run_id.in_(ids[start : start + st.IN_CHUNK]))
                    .order_by(outbox.c.seq)
                ).mappings()
                found.extend(
                    ActionState(
                        id=r["id"],
                        run_id=r["run_id"],
                        kind=ActionKind(r["kind"]),
                        status=OutboxStatus(r["status"]),
                        attempts=r["attempts"],
                        remote_id=r["remote_id"],
                        last_error=r["last_error"],
                    )
                    for r in rows
                )
            return found

        return await self.db.run_read(work)
