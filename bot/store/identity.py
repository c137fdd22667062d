"""Who is talking to whom: agents and their versions, smiths, threads.

Smiths are upserted on ``(external_id, agent_id)``; a thread belongs to the smith that opened
its ticket and is never handed to another. The functions of a ``Connection`` here are the
pieces a turn's own transaction reuses (``runs.Runs.start_thread``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, union_all, update
from sqlalchemy.engine import Connection, RowMapping

from bot.domain import (
    JSON,
    Agent,
    AgentDefinition,
    AgentVersion,
    Control,
    InboundMessage,
    NotFound,
    Smith,
    Thread,
    ThreadChange,
    ThreadState,
    new_id,
    now,
)
from bot.store import statements as st
from bot.store.database import Database
from bot.store.rows import to_agent, to_agent_version, to_smith, to_thread
from bot.store.schema import agent_versions, agents, smiths, threads

_SMITH_PATCHABLE = frozenset({"display_name", "customer_id", "metadata", "auto_memory"})


@dataclass(frozen=True, slots=True)
class SmithFields:
    """What ``ensure_smith`` sets on a smith besides who it is (None: leave as it is)."""

    display_name: str | None
    customer_id: str | None
    metadata: JSON | None
    auto_memory: bool | None


def check_owner(thread: Thread, smith: Smith, external_id: str) -> None:
    if thread.smith_id != smith.id:
        # A ticket belongs to the smith that opened it; never reuse it for someone else.
        raise PermissionError(f"thread {external_id!r} belongs to another smith")


def live_smith_row(conn: Connection, agent_id: str, external_id: str) -> RowMapping | None:
    params = {"agent_id": agent_id, "external_id": external_id}
    return conn.execute(st.LIVE_SMITH, params).mappings().first()


def upsert_smith(
    conn: Connection,
    external_id: str | None,
    agent_id: str,
    fields: SmithFields,
    *,
    smith_id: str | None = None,
) -> Smith | None:
    """``ensure_smith`` inside a write transaction; None when another writer created the
    smith between our read and insert (try again). ``smith_id``: the id a smith created here
    gets (so the caller can tell a new one)."""
    smith_id = smith_id or new_id("smt")
    if external_id is None:
        values = _new_smith_values(external_id, agent_id, fields)
        return to_smith(conn.execute(st.INSERT_SMITH, {"id": smith_id, **values}).mappings().one())
    live = live_smith_row(conn, agent_id, external_id)
    return upsert_live_smith(conn, live, external_id, agent_id, fields, smith_id=smith_id)


def upsert_live_smith(
    conn: Connection,
    live: Mapping[Any, Any] | None,
    external_id: str,
    agent_id: str,
    fields: SmithFields,
    *,
    smith_id: str,
) -> Smith | None:
    """``upsert_smith`` given the row of the live smith of ``external_id`` as this transaction
    read it (None: none lives), so the caller that read it with other rows saves the read."""
    if live is None:
        values = _new_smith_values(external_id, agent_id, fields)
        new = st.NEW_LIVE_SMITH[conn.dialect.name]
        inserted = conn.execute(new, {"id": smith_id, **values}).mappings().first()
        return None if inserted is None else to_smith(inserted)
    patch: dict[str, Any] = {}
    if fields.display_name is not None and fields.display_name != live["display_name"]:
        patch["display_name"] = fields.display_name
    if fields.customer_id is not None and fields.customer_id != live["customer_id"]:
        patch["customer_id"] = fields.customer_id
    if fields.metadata:
        merged = {**live["metadata"], **fields.metadata}
        if merged != live["metadata"]:
            patch["metadata"] = merged
    if patch:
        patch["updated_at"] = now()
        conn.execute(update(smiths).where(smiths.c.id == live["id"]).values(**patch))
        updated = live_smith_row(conn, agent_id, external_id)
        assert updated is not None
        return to_smith(updated)
    return to_smith(live)


def _new_smith_values(external_id: str | None, agent_id: str, fields: SmithFields) -> dict[str, Any]:
    default_memory = not (external_id is None or external_id.startswith("anon:"))
    created = now()
    return {
        "agent_id": agent_id,
        "external_id": external_id,
        "display_name": fields.display_name,
        "customer_id": fields.customer_id,
        "metadata": fields.metadata or {},
        "auto_memory": default_memory if fields.auto_memory is None else fields.auto_memory,
        "created_at": created,
        "updated_at": created,
    }


def _new_thread_values(external_id: str, channel: str, metadata: JSON | None) -> dict[str, Any]:
    """A new ticket's thread row, but for its smith."""
    created = now()
    return {
        "id": new_id("thr"),
        "external_id": external_id,
        "channel": channel,
        "state": ThreadState.OPEN.value,
        "control": Control.BOT.value,
        "title": None,
        "metadata": metadata or {},
        "created_at": created,
        "updated_at": created,
    }


def new_ticket_in(
    conn: Connection,
    message: InboundMessage,
    agent_id: str,
    fields: SmithFields,
    *,
    smith_id: str,
) -> tuple[Thread | None, Smith] | None:
    """A new ticket of a sender no live smith stands for, on PostgreSQL: its smith and its
    thread inserted in one statement (``statements.NEW_TICKET``). None when a live smith of
    the sender was inserted by another writer meanwhile (as ``upsert_live_smith``); no thread
    when the ticket's thread was (it is then another smith's)."""
    assert message.smith_external_id is not None
    smith_values = _new_smith_values(message.smith_external_id, agent_id, fields)
    thread_values = _new_thread_values(
        message.thread_external_id, message.source, message.ref
    )
    params = {
        "id": smith_id,
        **smith_values,
        **{f"thr_{name}": value for name, value in thread_values.items()},
    }
    row = conn.execute(st.NEW_TICKET, params).mappings().first()
    if row is None:
        return None
    smith = to_smith({c.name: row[c.name] for c in smiths.c})
    if row["thr__id"] is None:
        return None, smith
    return to_thread({c.name: row[f"thr__{c.name}"] for c in threads.c}), smith


def version_of(conn: Connection, smith: Smith) -> AgentVersion | None:
    """The version a smith runs: its pin, else the agent's live version, else none yet."""
    params = {"agent_id": smith.agent_id, "pinned": smith.pinned_version}
    row = conn.execute(st.SMITH_VERSION, params).mappings().first()
    return to_agent_version(row) if row else None


class Identity:
    """Agents, smiths and threads."""

    def __init__(self, db: Database):
        self.db = db
        # Built once: a new ticket's thread is written on the hot path of a turn.
        self._insert_thread = db.insert_ignore(threads, ["agent_id", "external_id"]).returning(
            *threads.c
        )
        self._insert_agent = db.insert_ignore(agents, ["slug"])

    # -- agents ----------------------------------------------------------------------------

    async def ensure_agent(self, slug: str, name: str) -> Agent:
        def work(conn: Connection) -> Agent:
            conn.execute(
                self._insert_agent.values(id=new_id("agt"), slug=slug, name=name, created_at=now())
            )
            conn.execute(update(agents).where(agents.c.slug == slug).values(name=name))
            return to_agent(
                conn.execute(select(agents).where(agents.c.slug == slug)).mappings().one()
            )

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
        return await self.db.run_read(lambda conn: version_of(conn, smith))

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
        fields = SmithFields(display_name, customer_id, metadata, auto_memory)
        for _ in range(3):
            smith = await self.db.run_tx(
                lambda conn: upsert_smith(conn, external_id, agent_id, fields)
            )
            if smith is not None:
                return smith
        raise RuntimeError(f"could not upsert smith {external_id!r}")

    async def get_smith(self, smith_id: str, *, include_archived: bool = False) -> Smith:
        query = select(smiths).where(smiths.c.id == smith_id)
        if not include_archived:
            query = query.where(smiths.c.archived_at.is_(None))
        row = await self.db.run_read(lambda conn: conn.execute(query).mappings().first())
        if row is None:
            raise NotFound(f"no smith {smith_id!r}")
        return to_smith(row)

    async def find_smith(self, external_id: str, agent_id: str) -> Smith | None:
        row = await self.db.run_read(lambda conn: live_smith_row(conn, agent_id, external_id))
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
            lambda conn: self.add_thread(conn, smith, external_id, channel, metadata)
        )
        check_owner(thread, smith, external_id)
        return thread

    def add_thread(
        self, conn: Connection, smith: Smith, external_id: str, channel: str, metadata: JSON | None
    ) -> Thread:
        """The ticket's thread, inserted unless it exists (under whichever smith owns it)."""
        return self.add_thread_in(conn, smith, external_id, channel, metadata)[0]

    def add_thread_in(
        self, conn: Connection, smith: Smith, external_id: str, channel: str, metadata: JSON | None
    ) -> tuple[Thread, bool]:
        """``add_thread``, and whether this transaction created the thread."""
        values = {
            "smith_id": smith.id,
            "agent_id": smith.agent_id,
            **_new_thread_values(external_id, channel, metadata),
        }
        row = conn.execute(self._insert_thread, values).mappings().first()
        if row is not None:
            return to_thread(row), True
        params = {"agent_id": smith.agent_id, "external_id": external_id}
        return to_thread(conn.execute(st.THREAD_OF_TICKET, params).mappings().one()), False

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
        """The most recently updated threads first (ties: the later id first)."""
        newest = (threads.c.updated_at.desc(), threads.c.id.desc())
        query: Any
        if state is None and smith_id is None:
            # Every state's newest, each read backwards from ``ix_threads_state_updated`` under
            # the limit, merged: without a state to look up, one query would read every thread
            # (and sort them) for the first page.
            parts = [
                select(threads)
                .where(threads.c.state == each.value)
                .order_by(*newest)
                .limit(limit)
                .subquery()
                .select()
                for each in ThreadState
            ]
            merged = union_all(*parts).subquery()
            query = select(merged).order_by(merged.c.updated_at.desc(), merged.c.id.desc())
        else:
            query = select(threads)
            if state is not None:
                query = query.where(threads.c.state == state.value)
            if smith_id is not None:
                query = query.where(threads.c.smith_id == smith_id)
            query = query.order_by(*newest)
        query = query.limit(limit)
        return await self.db.run_read(
            lambda conn: [to_thread(r) for r in conn.execute(query).mappings()]
        )
