"""Every query the daemon makes, on SQLite and PostgreSQL alike.

Identity (agents, smiths, threads), the audit log (runs and tool calls), the inbox with its
per-thread lanes, the outbox, memory and cursors. Each transaction is one unit of work: a plain
function of a ``Connection`` handed to ``Database.run_tx`` (read-then-write) or
``Database.run_read``, so it costs one thread hop on SQLite rather than several per statement.
Claims are conditional updates, so two workers (or two replicas) never take the same lane or
action while its lease holds.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement

from bot.domain import (
    JSON,
    Action,
    ActionKind,
    Agent,
    AgentDefinition,
    AgentVersion,
    Control,
    InboundMessage,
    InboxStatus,
    NotFound,
    OutboxStatus,
    Run,
    Smith,
    Thread,
    ThreadChange,
    ThreadState,
    ToolCallRecord,
    new_id,
    now,
)
from bot.store import statements as st
from bot.store.database import Database
from bot.store.errors import LeaseLost
from bot.store.rows import (
    run_values,
    to_action,
    to_agent,
    to_agent_version,
    to_run,
    to_smith,
    to_thread,
)
from bot.store.schema import (
    agent_versions,
    agents,
    cursors,
    inbox,
    lanes,
    memories,
    outbox,
    runs,
    smiths,
    threads,
    tool_calls,
)

# Moved to ``bot.domain`` and ``bot.store.errors``; importable from here during the transition.
__all__ = ["LeaseLost", "NotFound", "Store", "ThreadChange"]


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

    @property
    def retry(self) -> bool:
        """An earlier try at these messages may have shown the customer something."""
        return self.recovered or any(item.attempts for item in self.items)


@dataclass(frozen=True, slots=True)
class TurnInputs:
    version: AgentVersion | None
    history: tuple[Run, ...]
    memories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _SmithFields:
    """What ``ensure_smith`` sets on a smith besides who it is (None: leave as it is)."""

    display_name: str | None
    customer_id: str | None
    metadata: JSON | None
    auto_memory: bool | None


def _check_owner(thread: Thread, smith: Smith, external_id: str) -> None:
    if thread.smith_id != smith.id:
        # A ticket belongs to the smith that opened it; never reuse it for someone else.
        raise PermissionError(f"thread {external_id!r} belongs to another smith")


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



@dataclass(slots=True)
class _PendingPut:
    """One delivery waiting for the next group commit: its messages' rows, oldest first, and
    whether each was new."""

    rows: list[dict[str, Any]]
    done: asyncio.Future[list[bool]]


# Rows per group-commit insert (7 bound values each; far below SQLite's variable limit). A
# delivery is never split between commits, so one larger than this is written on its own.
INBOX_BATCH = 256
# Why an older message of a delivery is stored without a turn of its own.
CONTEXT_ONLY = "an older message of a delivery whose newest message was already taken"

_SMITH_PATCHABLE = frozenset({"display_name", "customer_id", "metadata", "auto_memory"})


def lane_key(agent_slug: str, thread_external_id: str) -> str:
    return f"{agent_slug}|{thread_external_id}"


class Store:
    """The daemon's durable state. One instance per process, shared by every room."""

    def __init__(self, db: Database):
        self.db = db
        self._inbox_queue: list[_PendingPut] = []
        self._inbox_lock = asyncio.Lock()
        self._inbox_flushes: set[asyncio.Task[None]] = set()
        # Built once: a new ticket's thread is written on the hot path of a turn.
        self._insert_thread_statement = self.db.insert_ignore(threads, ["agent_id", "external_id"])

    # -- agents ----------------------------------------------------------------------------

    async def ensure_agent(self, slug: str, name: str) -> Agent:
        def work(conn: Connection) -> Agent:
            conn.execute(
                self.db.insert_ignore(agents, ["slug"]).values(
                    id=new_id("agt"), slug=slug, name=name, created_at=now()
                )
            )
            conn.execute(update(agents).where(agents.c.slug == slug).values(name=name))
            return to_agent(conn.execute(select(agents).where(agents.c.slug == slug)).mappings().one())

        return await self.db.run_tx(work)

    async def get_agent(self, slug: str) -> Agent:
        query = select(agents).where(agents.c.slug == slug)
        row = await self.db.run_read(lambda conn: conn.execute(query).mappings().first())
        if row is None:
            raise NotFound(f"no agent {slug!r}")
        return to_agent(row)

    async def get_agent_by_id(self, agent_id: str) -> Agent:
        query = select(agents).where(agents.c.id == agent_id)
        row = await self.db.run_read(lambda conn: conn.execute(query).mappings().first())
        if row is None:
            raise NotFound(f"no agent {agent_id!r}")
        return to_agent(row)

    async def publish_agent(self, definition: AgentDefinition, note: str) -> AgentVersion:
        """Freeze ``definition`` as the agent's next version; the first one goes live."""
        agent = await self.ensure_agent(definition.slug, definition.name)

        def work(conn: Connection) -> AgentVersion:
            last = conn.execute(
                select(func.max(agent_versions.c.version)).where(
                    agent_versions.c.agent_id == agent.id
                )
            ).scalar()
            version = (last or 0) + 1
            created = now()
            conn.execute(
                insert(agent_versions).values(
                    agent_id=agent.id,
                    version=version,
                    definition=definition.to_json(),
                    note=note,
                    created_at=created,
                )
            )
            conn.execute(
                update(agents)
                .where(agents.c.id == agent.id, agents.c.live_version.is_(None))
                .values(live_version=version)
            )
            return AgentVersion(agent.id, version, definition, note, created)

        return await self.db.run_tx(work)

    async def set_live_version(self, slug: str, version: int) -> None:
        agent = await self.get_agent(slug)

        def work(conn: Connection) -> None:
            exists = conn.execute(
                select(agent_versions.c.version).where(
                    agent_versions.c.agent_id == agent.id, agent_versions.c.version == version
                )
            ).first()
            if exists is None:
                raise NotFound(f"agent {slug!r} has no version {version}")
            conn.execute(update(agents).where(agents.c.id == agent.id).values(live_version=version))

        await self.db.run_tx(work)

    async def agent_versions(self, slug: str) -> list[AgentVersion]:
        agent = await self.get_agent(slug)
        query = (
            select(agent_versions)
            .where(agent_versions.c.agent_id == agent.id)
            .order_by(agent_versions.c.version)
        )
        return await self.db.run_read(
            lambda conn: [to_agent_version(r) for r in conn.execute(query).mappings()]
        )

    async def version_for(self, smith: Smith) -> AgentVersion | None:
        """The version a smith runs: its pin, else the agent's live version, else none yet."""
        return await self.db.run_read(lambda conn: self._version_for(conn, smith))

    def _version_for(self, conn: Connection, smith: Smith) -> AgentVersion | None:
        version = smith.pinned_version
        if version is None:
            version = conn.execute(st.LIVE_VERSION, {"agent_id": smith.agent_id}).scalar()
        if version is None:
            return None
        row = conn.execute(
            st.AGENT_VERSION, {"agent_id": smith.agent_id, "version": version}
        ).mappings().first()
        return to_agent_version(row) if row else None

    def _turn_inputs(
        self, conn: Connection, smith: Smith, thread_id: str, history: int
    ) -> TurnInputs:
        """What a turn reads before it runs: the agent version the smith runs, the thread's
        latest runs, and the smith's memories when it keeps them."""
        version = self._version_for(conn, smith)
        runs_ = self._thread_runs(conn, thread_id, history)
        facts = self._memories(conn, smith.id, 50) if smith.auto_memory else []
        return TurnInputs(version, tuple(runs_), tuple(facts))

    # -- smiths ----------------------------------------------------------------------------

    async def ensure_smith(
        self,
        external_id: str | None,
        agent_id: str,
        *,
        display_name: str | None = None,
        customer_id: str | None = None,
        metadata: JSON | None = None,
        auto_memory: bool | None = None,
    ) -> Smith:
        """Upsert on ``(external_id, agent_id)``; no ``external_id`` makes a throwaway smith.

        On an existing smith, given non-None fields are updated (metadata is merged), so calling
        this on every message keeps the profile fresh without ever changing who the smith is.
        """
        fields = _SmithFields(display_name, customer_id, metadata, auto_memory)
        for _ in range(3):
            smith = await self.db.run_tx(
                lambda conn: self._upsert_smith(conn, external_id, agent_id, fields)
            )
            if smith is not None:
                return smith
        raise RuntimeError(f"could not upsert smith {external_id!r}")

    def _upsert_smith(
        self, conn: Connection, external_id: str | None, agent_id: str, fields: _SmithFields
    ) -> Smith | None:
        """``ensure_smith`` inside a write transaction; None when another writer created the
        smith between our read and insert (try again)."""
        default_memory = not (external_id is None or external_id.startswith("anon:"))
        created = now()
        values = {
            "agent_id": agent_id,
            "external_id": external_id,
            "display_name": fields.display_name,
            "customer_id": fields.customer_id,
            "metadata": fields.metadata or {},
            "auto_memory": default_memory if fields.auto_memory is None else fields.auto_memory,
            "created_at": created,
            "updated_at": created,
        }
        if external_id is None:
            smith_id = new_id("smt")
            conn.execute(insert(smiths).values(id=smith_id, **values))
            return to_smith(conn.execute(st.SMITH_BY_ID, {"smith_id": smith_id}).mappings().one())
        row = self._live_smith_row(conn, agent_id, external_id)
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(smiths).values(id=new_id("smt"), **values))
            except IntegrityError:
                return None
            inserted = self._live_smith_row(conn, agent_id, external_id)
            assert inserted is not None
            return to_smith(inserted)
        patch: dict[str, Any] = {}
        if fields.display_name is not None and fields.display_name != row["display_name"]:
            patch["display_name"] = fields.display_name
        if fields.customer_id is not None and fields.customer_id != row["customer_id"]:
            patch["customer_id"] = fields.customer_id
        if fields.metadata:
            merged = {**row["metadata"], **fields.metadata}
            if merged != row["metadata"]:
                patch["metadata"] = merged
        if patch:
            patch["updated_at"] = now()
            conn.execute(update(smiths).where(smiths.c.id == row["id"]).values(**patch))
            updated = self._live_smith_row(conn, agent_id, external_id)
            assert updated is not None
            return to_smith(updated)
        return to_smith(row)

    def _live_smith_row(
        self, conn: Connection, agent_id: str, external_id: str
    ) -> RowMapping | None:
        params = {"agent_id": agent_id, "external_id": external_id}
        return conn.execute(st.LIVE_SMITH, params).mappings().first()

    async def get_smith(self, smith_id: str, *, include_archived: bool = False) -> Smith:
        query = select(smiths).where(smiths.c.id == smith_id)
        if not include_archived:
            query = query.where(smiths.c.archived_at.is_(None))
        row = await self.db.run_read(lambda conn: conn.execute(query).mappings().first())
        if row is None:
            raise NotFound(f"no smith {smith_id!r}")
        return to_smith(row)

    async def find_smith(self, external_id: str, agent_id: str) -> Smith | None:
        row = await self.db.run_read(
            lambda conn: self._live_smith_row(conn, agent_id, external_id)
        )
        return to_smith(row) if row else None

    async def patch_smith(self, smith_id: str, **fields: Any) -> Smith:
        """Change the mutable fields of a smith; ``external_id`` is immutable by design."""
        unknown = set(fields) - _SMITH_PATCHABLE
        if unknown:
            raise ValueError(f"cannot patch smith fields: {', '.join(sorted(unknown))}")

        def work(conn: Connection) -> None:
            row = conn.execute(
                select(smiths).where(smiths.c.id == smith_id, smiths.c.archived_at.is_(None))
            ).mappings().first()
            if row is None:
                raise NotFound(f"no smith {smith_id!r}")
            if "metadata" in fields and fields["metadata"] is not None:
                fields["metadata"] = {**row["metadata"], **fields["metadata"]}
            conn.execute(
                update(smiths).where(smiths.c.id == smith_id).values(**fields, updated_at=now())
            )

        await self.db.run_tx(work)
        return await self.get_smith(smith_id)

    async def pin_smith(self, smith_id: str, version: int | None) -> Smith:
        statement = (
            update(smiths)
            .where(smiths.c.id == smith_id, smiths.c.archived_at.is_(None))
            .values(pinned_version=version, updated_at=now())
        )
        if await self.db.run_tx(lambda conn: conn.execute(statement).rowcount) == 0:
            raise NotFound(f"no smith {smith_id!r}")
        return await self.get_smith(smith_id)

    async def archive_smith(self, smith_id: str) -> None:
        """Soft-archive: the smith and its history stay, its ``external_id`` is free again."""
        statement = (
            update(smiths)
            .where(smiths.c.id == smith_id, smiths.c.archived_at.is_(None))
            .values(archived_at=now(), updated_at=now())
        )
        if await self.db.run_tx(lambda conn: conn.execute(statement).rowcount) == 0:
            raise NotFound(f"no smith {smith_id!r}")

    async def list_smiths(
        self,
        *,
        external_id_prefix: str | None = None,
        agent_id: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[Smith]:
        query = select(smiths).where(smiths.c.archived_at.is_(None))
        if external_id_prefix:
            query = query.where(st.prefix(smiths.c.external_id, external_id_prefix))
        if agent_id:
            query = query.where(smiths.c.agent_id == agent_id)
        if after:
            query = query.where(smiths.c.id > after)
        query = query.order_by(smiths.c.id).limit(limit)
        return await self.db.run_read(
            lambda conn: [to_smith(r) for r in conn.execute(query).mappings()]
        )

    # -- threads ---------------------------------------------------------------------------

    async def ensure_thread(
        self, smith: Smith, external_id: str, channel: str, *, metadata: JSON | None = None
    ) -> Thread:
        """The thread for a ticket under ``smith``, created on first sight."""
        thread = await self.db.run_tx(
            lambda conn: self._insert_thread(conn, smith, external_id, channel, metadata)
        )
        _check_owner(thread, smith, external_id)
        return thread

    def _insert_thread(
        self, conn: Connection, smith: Smith, external_id: str, channel: str, metadata: JSON | None
    ) -> Thread:
        """The ticket's thread, inserted unless it exists (under whichever smith owns it)."""
        created = now()
        conn.execute(
            self._insert_thread_statement,
            {
                "id": new_id("thr"),
                "smith_id": smith.id,
                "agent_id": smith.agent_id,
                "external_id": external_id,
                "channel": channel,
                "state": ThreadState.OPEN.value,
                "control": Control.BOT.value,
                "title": None,
                "metadata": metadata or {},
                "created_at": created,
                "updated_at": created,
            },
        )
        params = {"agent_id": smith.agent_id, "external_id": external_id}
        return to_thread(conn.execute(st.THREAD_OF_TICKET, params).mappings().one())

    async def start_thread(
        self,
        message: InboundMessage,
        agent_id: str,
        *,
        history: int,
    ) -> tuple[Thread, Smith, TurnInputs]:
        """A ticket seen for the first time, in one write transaction: its smith upserted
        (``ensure_smith`` with the message's profile), its thread created (``ensure_thread``)
        and what the turn reads (``_turn_inputs``). Raises ``PermissionError`` as
        ``ensure_thread`` does when the ticket turns out to belong to another smith."""
        fields = _SmithFields(message.display_name, None, message.profile or None, None)

        def work(conn: Connection) -> tuple[Thread, Smith, TurnInputs] | None:
            smith = self._upsert_smith(conn, message.smith_external_id, agent_id, fields)
            if smith is None:
                return None
            thread = self._insert_thread(
                conn, smith, message.thread_external_id, message.source, message.ref
            )
            if thread.smith_id != smith.id:
                return thread, smith, TurnInputs(None, (), ())  # refused below
            return thread, smith, self._turn_inputs(conn, smith, thread.id, history)

        for _ in range(3):
            started = await self.db.run_tx(work)
            if started is not None:
                _check_owner(started[0], started[1], message.thread_external_id)
                return started
        raise RuntimeError(f"could not upsert smith {message.smith_external_id!r}")

    async def get_thread(self, thread_id: str) -> Thread:
        query = select(threads).where(threads.c.id == thread_id)
        row = await self.db.run_read(lambda conn: conn.execute(query).mappings().first())
        if row is None:
            raise NotFound(f"no thread {thread_id!r}")
        return to_thread(row)

    async def find_thread(self, agent_id: str, external_id: str) -> Thread | None:
        query = select(threads).where(
            threads.c.agent_id == agent_id, threads.c.external_id == external_id
        )
        row = await self.db.run_read(lambda conn: conn.execute(query).mappings().first())
        return to_thread(row) if row else None

    async def thread_for_turn(
        self, agent_id: str, external_id: str, *, history: int
    ) -> tuple[Thread, Smith, TurnInputs] | None:
        """A known ticket's thread, the smith it belongs to (archived or not) and what a turn
        on it reads (``_turn_inputs``), in one read transaction; None for a new ticket."""
        params = {"agent_id": agent_id, "external_id": external_id}

        def work(conn: Connection) -> tuple[Thread, Smith, TurnInputs] | None:
            row = conn.execute(st.THREAD_WITH_OWNER, params).mappings().first()
            if row is None:
                return None
            thread = to_thread(row)
            smith = to_smith({c.name: row[f"own__{c.name}"] for c in st.OWNER.c})  # type: ignore[arg-type]
            return thread, smith, self._turn_inputs(conn, smith, thread.id, history)

        return await self.db.run_read(work)

    async def find_threads_by_external(self, external_id: str) -> list[Thread]:
        """Every agent's thread for one ticket (connectors know the ticket, not the agent)."""
        query = select(threads).where(threads.c.external_id == external_id)
        return await self.db.run_read(
            lambda conn: [to_thread(r) for r in conn.execute(query).mappings()]
        )

    async def update_thread(self, thread_id: str, change: ThreadChange) -> Thread:
        values: dict[str, Any] = {"updated_at": now()}
        if change.state is not None:
            values["state"] = change.state.value
        if change.control is not None:
            values["control"] = change.control.value
        if change.title is not None:
            values["title"] = change.title
        statement = update(threads).where(threads.c.id == thread_id).values(**values)
        await self.db.run_tx(lambda conn: conn.execute(statement))
        return await self.get_thread(thread_id)

    async def list_threads(
        self,
        *,
        state: ThreadState | None = None,
        smith_id: str | None = None,
        limit: int = 100,
    ) -> list[Thread]:
        query = select(threads)
        if state is not None:
            query = query.where(threads.c.state == state.value)
        if smith_id is not None:
            query = query.where(threads.c.smith_id == smith_id)
        query = query.order_by(threads.c.updated_at.desc(), threads.c.id).limit(limit)
        return await self.db.run_read(
            lambda conn: [to_thread(r) for r in conn.execute(query).mappings()]
        )

    # -- runs ------------------------------------------------------------------------------

    async def thread_runs(self, thread_id: str, *, limit: int = 50) -> list[Run]:
        """The thread's latest runs, oldest first (the turn history)."""
        return await self.db.run_read(lambda conn: self._thread_runs(conn, thread_id, limit))

    def _thread_runs(self, conn: Connection, thread_id: str, limit: int) -> list[Run]:
        rows = list(
            conn.execute(st.THREAD_RUNS, {"thread_id": thread_id, "limit": limit}).mappings()
        )
        rows.reverse()
        calls = self._tool_calls(conn, [r["id"] for r in rows])
        return [to_run(r, calls.get(r["id"], ())) for r in rows]

    async def get_run(self, run_id: str) -> Run:
        def work(conn: Connection) -> Run:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                raise NotFound(f"no run {run_id!r}")
            return to_run(row, self._tool_calls(conn, [run_id]).get(run_id, ()))

        return await self.db.run_read(work)

    async def list_runs(
        self,
        *,
        external_id_prefix: str | None = None,
        thread_id: str | None = None,
        smith_id: str | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Runs newest first, optionally for one segment of smiths (``anon:``, ``intercom:``)."""
        query = select(runs)
        if external_id_prefix:
            query = query.join(smiths, smiths.c.id == runs.c.smith_id).where(
                st.prefix(smiths.c.external_id, external_id_prefix)
            )
        if thread_id:
            query = query.where(runs.c.thread_id == thread_id)
        if smith_id:
            query = query.where(runs.c.smith_id == smith_id)
        query = query.order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)

        def work(conn: Connection) -> list[Run]:
            rows = list(conn.execute(query.with_only_columns(*runs.c)).mappings())
            calls = self._tool_calls(conn, [r["id"] for r in rows])
            return [to_run(r, calls.get(r["id"], ())) for r in rows]

        return await self.db.run_read(work)

    def _tool_calls(
        self, conn: Connection, run_ids: Sequence[str]
    ) -> dict[str, tuple[ToolCallRecord, ...]]:
        """The tool calls of several runs in one query, by run id."""
        if not run_ids:
            return {}
        rows = conn.execute(
            select(tool_calls)
            .where(tool_calls.c.run_id.in_(list(run_ids)))
            .order_by(tool_calls.c.run_id, tool_calls.c.seq)
        ).mappings()
        found: dict[str, list[ToolCallRecord]] = {}
        for r in rows:
            found.setdefault(r["run_id"], []).append(
                ToolCallRecord(
                    seq=r["seq"],
                    call_id=r["call_id"],
                    name=r["name"],
                    arguments=r["arguments"],
                    result=r["result"],
                    error=r["error"],
                    latency_ms=r["latency_ms"],
                )
            )
        return {run_id: tuple(calls) for run_id, calls in found.items()}

    # -- memory ----------------------------------------------------------------------------

    async def memories(self, smith_id: str, *, limit: int = 50) -> list[str]:
        return await self.db.run_read(lambda conn: self._memories(conn, smith_id, limit))

    def _memories(self, conn: Connection, smith_id: str, limit: int) -> list[str]:
        rows = conn.execute(st.MEMORIES, {"smith_id": smith_id, "limit": limit})
        return [r[0] for r in rows]

    # -- inbox and lanes -------------------------------------------------------------------

    async def inbox_put(self, message: InboundMessage, agent_slug: str) -> bool:
        """Store an inbound message durably; False when this delivery was already stored."""
        (new,) = await self.inbox_put_delivery([(message, agent_slug)])
        return new

    async def inbox_put_delivery(
        self, messages: Sequence[tuple[InboundMessage, str]]
    ) -> list[bool]:
        """Store one delivery's messages (oldest first, each with its agent slug) durably and
        together; for each, False when it was already stored.

        Concurrent calls share one transaction (group commit): the first caller to find no
        write in progress writes every queued delivery at once, and each caller learns whether
        its own messages were new. A delivery is written whole in one transaction, so no turn
        can start on part of it. Only its newest message starts a turn: when that one was
        already stored (an earlier delivery carried it and started its turn), older messages
        new here are kept as skipped, never answered on their own. A webhook is acknowledged
        only after this returns.
        """
        if not messages:
            return []
        at = now()
        put = _PendingPut(
            rows=[
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
            ],
            done=asyncio.get_running_loop().create_future(),
        )
        self._inbox_queue.append(put)
        async with self._inbox_lock:
            if not put.done.done():
                batch = self._take_inbox_batch()
                flush = asyncio.create_task(self._inbox_flush(batch), name="inbox-flush")
                self._inbox_flushes.add(flush)
                flush.add_done_callback(self._inbox_flushes.discard)
                # Shielded: a caller that goes away (client disconnect) must not abort the
                # write the other callers in the batch are waiting for.
                await asyncio.shield(flush)
        return await put.done

    def _take_inbox_batch(self) -> list[_PendingPut]:
        """Whole deliveries from the head of the queue, up to ``INBOX_BATCH`` rows (at least
        one delivery, however large)."""
        taken = rows = 0
        for put in self._inbox_queue:
            if taken and rows + len(put.rows) > INBOX_BATCH:
                break
            taken += 1
            rows += len(put.rows)
        batch = self._inbox_queue[:taken]
        del self._inbox_queue[:taken]
        return batch

    async def _inbox_flush(self, batch: list[_PendingPut]) -> None:
        # executemany with RETURNING: SQLAlchemy renders it as multi-row VALUES from one cached
        # statement ("insertmanyvalues"); skipped duplicates return no row.
        def work(conn: Connection) -> list[list[bool]]:
            result = conn.execute(
                self.db.insert_ignore(inbox, ["source", "dedup_key"]).returning(
                    inbox.c.id, inbox.c.source, inbox.c.dedup_key
                ),
                [row for put in batch for row in put.rows],
            )
            inserted = {(row.source, row.dedup_key): row.id for row in result}
            # The same message in two deliveries of one batch: new for the first only.
            claimed: set[tuple[str, str]] = set()
            news: list[list[bool]] = []
            context_only: list[int] = []
            new_lanes: dict[str, float] = {}
            for put in batch:
                keys = [(row["source"], row["dedup_key"]) for row in put.rows]
                new = [key in inserted and key not in claimed for key in keys]
                claimed.update(keys)
                news.append(new)
                if not new[-1]:
                    context_only += [inserted[key] for key, fresh in zip(keys, new) if fresh]
                for row, fresh in zip(put.rows, new):
                    if fresh and new[-1]:
                        new_lanes[row["lane"]] = row["received_at"]
            if context_only:
                conn.execute(
                    st.INBOX_CONTEXT_ONLY,
                    {"ids": context_only, "error": CONTEXT_ONLY, "finished_at": now()},
                )
            if new_lanes:
                conn.execute(
                    self.db.insert_ignore(lanes, ["key"]),
                    [{"key": key, "touched_at": at} for key, at in new_lanes.items()],
                )
            return news

        try:
            news = await self.db.run_tx(work)
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else RuntimeError("inbox write cancelled")
            for put in batch:
                if not put.done.done():
                    put.done.set_exception(failure)
            raise
        for put, new in zip(batch, news):
            put.done.set_result(new)

    async def inbox_seen(self, source: str, dedup_key: str) -> bool:
        query = select(inbox.c.id).where(inbox.c.source == source, inbox.c.dedup_key == dedup_key)
        row = await self.db.run_read(lambda conn: conn.execute(query).first())
        return row is not None

    async def claim_lanes(self, *, limit: int, lease_seconds: float) -> list[LaneClaim]:
        """Take up to ``limit`` lanes with pending messages whose lease is free or expired.

        Each claim carries every pending message of its lane: messages that arrived while an
        earlier turn ran are answered together.
        """
        if limit <= 0:
            return []
        at = now()
        free = or_(lanes.c.lease_expires_at.is_(None), lanes.c.lease_expires_at < at)
        busy_lanes = select(inbox.c.lane).where(inbox.c.status == InboxStatus.PENDING.value)
        candidates = (
            select(lanes.c.key)
            .where(lanes.c.key.in_(busy_lanes), free)
            .order_by(lanes.c.touched_at, lanes.c.key)
            .limit(limit)
        )
        # Look first in a read transaction: an empty poll must not take SQLite's write lock
        # (the next customer's message would queue behind it).
        seen = await self.db.run_read(lambda conn: [r[0] for r in conn.execute(candidates)])
        if not seen:
            return []

        def work(conn: Connection) -> list[LaneClaim]:
            claims: list[LaneClaim] = []
            keys = [
                (r[0], r[1] is not None)
                for r in conn.execute(
                    select(lanes.c.key, lanes.c.lease_expires_at)
                    .where(lanes.c.key.in_(seen), free)
                    .order_by(lanes.c.touched_at, lanes.c.key)
                    .with_for_update(skip_locked=True)
                )
            ]
            for key, expired in keys:
                token = new_id("lse")
                result = conn.execute(
                    update(lanes)
                    .where(lanes.c.key == key, free)
                    .values(lease_token=token, lease_expires_at=at + lease_seconds)
                )
                if result.rowcount != 1:
                    continue
                rows = conn.execute(
                    select(inbox)
                    .where(inbox.c.lane == key, inbox.c.status == InboxStatus.PENDING.value)
                    .order_by(inbox.c.id)
                ).mappings()
                items = tuple(_inbox_item(r) for r in rows)
                if items:
                    claims.append(LaneClaim(key, token, items, recovered=expired))
                else:
                    conn.execute(
                        update(lanes)
                        .where(lanes.c.key == key, lanes.c.lease_token == token)
                        .values(lease_token=None, lease_expires_at=None)
                    )
            return claims

        return await self.db.run_tx(work)

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
            self._release(conn, claim, at, hold_until=at + retry_after if retry_after else None)
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

    def _release(
        self, conn: Connection, claim: LaneClaim, at: float, hold_until: float | None = None
    ) -> None:
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

    async def commit_turn(
        self,
        claim: LaneClaim,
        run: Run,
        actions: Sequence[Action],
        *,
        thread_change: ThreadChange,
        new_memories: Sequence[str] = (),
    ) -> None:
        """Record a finished turn in ONE transaction: run, tool calls, outbox actions, thread
        state, memories, and the claimed inbox messages marked done. Raises ``LeaseLost`` (and
        writes nothing) when another worker has taken the lane in the meantime."""
        at = now()

        def work(conn: Connection) -> None:
            self._release(conn, claim, at)
            conn.execute(st.INSERT_RUN, run_values(run))
            if run.tool_calls:
                conn.execute(
                    st.INSERT_TOOL_CALL,
                    [
                        {
                            "run_id": run.id,
                            "seq": call.seq,
                            "call_id": call.call_id,
                            "name": call.name,
                            "arguments": call.arguments,
                            "result": call.result,
                            "error": call.error,
                            "latency_ms": call.latency_ms,
                        }
                        for call in run.tool_calls
                    ],
                )
            if actions:
                conn.execute(
                    st.INSERT_ACTION,
                    [
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
                            "created_at": at,
                            "updated_at": at,
                        }
                        for action in actions
                    ],
                )
            values: dict[str, Any] = {"of_thread": run.thread_id, "updated_at": at}
            if thread_change.state is not None:
                values["state"] = thread_change.state.value
            if thread_change.control is not None:
                values["control"] = thread_change.control.value
            if thread_change.title is not None:
                conn.execute(
                    st.TITLE_UNTITLED, {"of_thread": run.thread_id, "title": thread_change.title}
                )
            conn.execute(st.UPDATE_THREAD, values)
            for fact in new_memories:
                conn.execute(
                    self.db.insert_ignore(memories, ["smith_id", "fact"]).values(
                        smith_id=run.smith_id, fact=fact, created_at=at
                    )
                )
            conn.execute(
                st.INBOX_DONE,
                {"ids": [item.id for item in claim.items], "run_id": run.id, "finished_at": at},
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

    # -- outbox ----------------------------------------------------------------------------

    async def claim_actions(self, *, limit: int, lease_seconds: float) -> list[ActionClaim]:
        """Due actions, at most the oldest unfinished one per thread, leased to this caller,
        each with the thread it acts on.

        A claim counts as a try: an action whose lease ran out while its sender was still at
        work comes back with ``attempt > 0``, so its connector looks for the earlier send
        before sending again.
        """
        at = now()
        # As for lanes: an empty poll stays a read.
        seen = await self.db.run_read(
            lambda conn: [r[0] for r in conn.execute(st.DUE_ACTIONS, {"at": at, "limit": limit})]
        )
        if not seen:
            return []

        def work(conn: Connection) -> list[ActionClaim]:
            claimed: list[ActionClaim] = []
            seqs = [r[0] for r in conn.execute(st.LOCK_DUE_ACTIONS, {"at": at, "seqs": seen})]
            for seq in seqs:
                token = new_id("lse")
                result = conn.execute(
                    st.LEASE_ACTION,
                    {"claimed_seq": seq, "at": at, "token": token, "expires": at + lease_seconds},
                )
                if result.rowcount != 1:
                    continue
                row = conn.execute(st.ACTION_WITH_THREAD, {"claimed_seq": seq}).mappings().one()
                thread_row = {c.name: row[f"thr__{c.name}"] for c in threads.c}
                # ``attempt`` counts earlier tries that may have reached the platform.
                action = to_action(row, attempt=row["attempts"] - 1)
                claimed.append(ActionClaim(action, to_thread(thread_row), token))  # type: ignore[arg-type]
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
        done = (
            update(outbox)
            .where(_held_by(claim))
            .values(
                status=OutboxStatus.DONE.value,
                remote_id=remote_id,
                lease_token=None,
                lease_expires_at=None,
                updated_at=at,
            )
        )

        def work(conn: Connection) -> bool:
            if conn.execute(done).rowcount == 1:
                return True
            self._record_refusal(conn, claim, f"sent as {remote_id!r}" if remote_id else "sent", at)
            return False

        return await self.db.run_tx(work)

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
                self._record_refusal(conn, claim, f"failed ({error[:500]})", at)
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

    @staticmethod
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
            lambda conn: [
                OutboxEntry(
                    action=to_action(r, attempt=r["attempts"]),
                    status=OutboxStatus(r["status"]),
                    attempts=r["attempts"],
                    remote_id=r["remote_id"],
                    last_error=r["last_error"],
                    created_at=r["created_at"],
                    updated_at=r["updated_at"],
                )
                for r in conn.execute(query).mappings()
            ]
        )

    async def outbox_counts(self) -> dict[str, int]:
        query = select(outbox.c.status, func.count()).group_by(outbox.c.status)
        return await self.db.run_read(
            lambda conn: {status: count for status, count in conn.execute(query)}
        )

    # -- cursors ---------------------------------------------------------------------------

    async def get_cursor(self, name: str) -> JSON | None:
        query = select(cursors.c.value).where(cursors.c.name == name)
        row = await self.db.run_read(lambda conn: conn.execute(query).first())
        return row[0] if row else None

    async def set_cursor(self, name: str, value: JSON) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(cursors).where(cursors.c.name == name))
            conn.execute(insert(cursors).values(name=name, value=value, updated_at=now()))

        await self.db.run_tx(work)

    # -- batch triage ------------------------------------------------------------------------

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

    async def run_summaries(self, run_ids: Sequence[str]) -> list[Run]:
        """Runs by id, without their tool calls (outcome, error and timings only)."""
        ids = list(dict.fromkeys(run_ids))

        def work(conn: Connection) -> list[Run]:
            found: list[Run] = []
            for start in range(0, len(ids), st.IN_CHUNK):
                rows = conn.execute(
                    select(runs).where(runs.c.id.in_(ids[start : start + st.IN_CHUNK]))
                ).mappings()
                found.extend(to_run(r, ()) for r in rows)
            return found

        return await self.db.run_read(work)

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

    async def claim_tick(self, job: str, tick: str, *, keep_seconds: float = 7 * 86_400.0) -> bool:
        """Claim one tick of a scheduled job for this process: True for exactly one caller per
        ``(job, tick)`` however many replicas ask (a unique row in ``cursors``). Claims older
        than ``keep_seconds`` are forgotten on the way."""
        at = now()
        prefix = f"tick:{job}:"

        def work(conn: Connection) -> bool:
            result = conn.execute(
                self.db.insert_ignore(cursors, ["name"]).values(
                    name=prefix + tick, value={"claimed_at": at}, updated_at=at
                )
            )
            conn.execute(
                delete(cursors).where(
                    st.prefix(cursors.c.name, prefix), cursors.c.updated_at < at - keep_seconds
                )
            )
            return bool(result.rowcount == 1)

        return await self.db.run_tx(work)

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """Hold a database-wide lock named ``name`` for the block, if free: yields False when
        another session holds it. PostgreSQL: ``pg_try_advisory_xact_lock`` in a transaction kept
        open for the block (released by commit, rollback or a dropped connection). SQLite:
        always True: a single-file deployment relies on ``claim_tick`` alone."""
        if self.db.is_sqlite:
            yield True
            return
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        async with self.db.engine.connect() as conn, conn.begin():
            got = (
                await conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
            ).scalar_one()
            yield bool(got)


def _held_by(claim: ActionClaim) -> ColumnElement[bool]:
    """The claim's action, still pending and still leased to the claim. A lease that ran out
    but was not taken by anyone yet still counts: nobody else can have sent in between."""
    return and_(
        outbox.c.id == claim.action.id,
        outbox.c.lease_token == claim.token,
        outbox.c.status == OutboxStatus.PENDING.value,
    )



# -- the store's own records -------------------------------------------------------------------


def _inbox_item(row: RowMapping) -> InboxItem:
    return InboxItem(
        id=row["id"],
        lane=row["lane"],
        message=InboundMessage.from_json(row["payload"]),
        attempts=row["attempts"],
        received_at=row["received_at"],
    )


_INBOX_ROW_COLUMNS = (
    inbox.c.id, inbox.c.source, inbox.c.dedup_key, inbox.c.status, inbox.c.attempts,
    inbox.c.run_id, inbox.c.error, inbox.c.received_at, inbox.c.finished_at,
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
