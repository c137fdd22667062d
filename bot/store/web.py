"""Queries of the web channel and the conversations API: conversation handles, claim-on-login
aliases, stored attachments, and the key that signs smith tokens.

Kept apart from ``Store`` so the core queries stay small; it shares the same ``Database``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from bot.domain import JSON, InboxStatus, NotFound, Smith, new_id, now
from bot.store.database import Database
from bot.store.rows import to_smith
from bot.store.schema import (
    conversations,
    cursors,
    files,
    inbox,
    smith_aliases,
    smiths,
    threads,
)
from bot.store.store import Store

TOKEN_KEY_CURSOR = "http.token_key"



@dataclass(frozen=True, slots=True)
class Conversation:
    """A listable handle on one web thread (``web:<id>``)."""

    id: str
    thread_id: str
    smith_id: str
    title: str | None
    metadata: JSON
    state: str
    control: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    smith_id: str
    filename: str
    content_type: str
    bytes: int
    sha256: str
    created_at: float


@dataclass(frozen=True, slots=True)
class InboxOutcome:
    """Where one inbound message stands: still pending, or done with the run that answered."""

    status: InboxStatus
    run_id: str | None
    error: str | None


def thread_external_id(conversation_id: str) -> str:
    return f"web:{conversation_id}"


class WebStore:
    """Conversations, aliases and files, on SQLite and PostgreSQL alike."""

    def __init__(self, store: Store):
        self.store = store
        self.db: Database = store.db

    # -- conversations ----------------------------------------------------------------------

    async def create_conversation(
        self, smith: Smith, *, title: str | None = None, metadata: JSON | None = None
    ) -> Conversation:
        """A new conversation and its thread, under ``smith``."""
        conversation_id = new_id("cnv")
        thread = await self.store.ensure_thread(
            smith, thread_external_id(conversation_id), "web",
            metadata={"conversation_id": conversation_id},
        )
        at = now()
        async with self.db.tx() as conn:
            if title is not None:
                await conn.execute(
                    update(threads).where(threads.c.id == thread.id).values(title=title)
                )
            await conn.execute(
                insert(conversations).values(
                    id=conversation_id,
                    thread_id=thread.id,
                    smith_id=smith.id,
                    metadata=dict(metadata or {}),
                    created_at=at,
                    updated_at=at,
                )
            )
        return await self.get_conversation(conversation_id, smith.id)

    def _conversation_query(self) -> Any:
        return select(
            conversations.c.id,
            conversations.c.thread_id,
            conversations.c.smith_id,
            conversations.c.metadata,
            conversations.c.created_at,
            conversations.c.updated_at,
            threads.c.title,
            threads.c.state,
            threads.c.control,
            threads.c.updated_at.label("thread_updated_at"),
        ).join(threads, threads.c.id == conversations.c.thread_id)

    async def get_conversation(self, conversation_id: str, smith_id: str) -> Conversation:
        """The live conversation, only if it belongs to ``smith_id`` (else ``NotFound``)."""
        query = self._conversation_query().where(
            conversations.c.id == conversation_id,
            conversations.c.smith_id == smith_id,
            conversations.c.deleted_at.is_(None),
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"no conversation {conversation_id!r}")
        return _conversation(row)

    async def list_conversations(
        self, smith_id: str, *, limit: int, after: str | None = None
    ) -> tuple[list[Conversation], bool]:
        """Newest first; ``after`` is the id of the last conversation of the previous page."""
        query = self._conversation_query().where(
            conversations.c.smith_id == smith_id, conversations.c.deleted_at.is_(None)
        )
        async with self.db.read() as conn:
            if after is not None:
                anchor = (
                    await conn.execute(
                        select(conversations.c.created_at).where(
                            conversations.c.id == after, conversations.c.smith_id == smith_id
                        )
                    )
                ).first()
                if anchor is None:
                    raise NotFound(f"no conversation {after!r}")
                query = query.where(
                    or_(
                        conversations.c.created_at < anchor[0],
                        and_(conversations.c.created_at == anchor[0], conversations.c.id < after),
                    )
                )
            query = query.order_by(
                conversations.c.created_at.desc(), conversations.c.id.desc()
            ).limit(limit + 1)
            rows = list((await conn.execute(query)).mappings())
        return [_conversation(r) for r in rows[:limit]], len(rows) > limit

    async def update_conversation(
        self,
        conversation_id: str,
        smith_id: str,
        *,
        title: str | None = None,
        metadata: JSON | None = None,
    ) -> Conversation:
        """Rename and/or merge metadata (a key set to null is removed, as OpenAI does)."""
        current = await self.get_conversation(conversation_id, smith_id)
        at = now()
        async with self.db.tx() as conn:
            values: dict[str, Any] = {"updated_at": at}
            if metadata is not None:
                merged = {**current.metadata, **metadata}
                values["metadata"] = {k: v for k, v in merged.items() if v is not None}
            await conn.execute(
                update(conversations).where(conversations.c.id == conversation_id).values(**values)
            )
            if title is not None:
                await conn.execute(
                    update(threads).where(threads.c.id == current.thread_id).values(title=title)
                )
        return await self.get_conversation(conversation_id, smith_id)

    async def delete_conversation(self, conversation_id: str, smith_id: str) -> None:
        """Remove the handle; the thread and its runs stay for the audit log."""
        async with self.db.tx() as conn:
            result = await conn.execute(
                update(conversations)
                .where(
                    conversations.c.id == conversation_id,
                    conversations.c.smith_id == smith_id,
                    conversations.c.deleted_at.is_(None),
                )
                .values(deleted_at=now())
            )
        if result.rowcount == 0:
            raise NotFound(f"no conversation {conversation_id!r}")

    # -- claim on login -----------------------------------------------------------------------

    async def alias_smith(self, agent_id: str, external_id: str) -> Smith | None:
        """The live smith a signed-in identity was claimed onto, if any."""
        query = (
            select(smiths)
            .join(smith_aliases, smith_aliases.c.smith_id == smiths.c.id)
            .where(
                smith_aliases.c.agent_id == agent_id,
                smith_aliases.c.external_id == external_id,
                smiths.c.archived_at.is_(None),
            )
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return to_smith(row) if row else None

    async def is_claimed(self, smith_id: str) -> bool:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(smith_aliases.c.external_id).where(smith_aliases.c.smith_id == smith_id)
                )
            ).first()
        return row is not None

    async def add_alias(self, agent_id: str, external_id: str, smith_id: str) -> bool:
        """Record ``external_id → smith``; False when that identity already has a live one."""
        async with self.db.tx() as conn:
            # An alias to an archived smith is free again, as the external id itself is.
            archived = select(smiths.c.id).where(smiths.c.archived_at.is_not(None))
            await conn.execute(
                delete(smith_aliases).where(
                    smith_aliases.c.agent_id == agent_id,
                    smith_aliases.c.external_id == external_id,
                    smith_aliases.c.smith_id.in_(archived),
                )
            )
            result = await conn.execute(
                self.db.insert_ignore(smith_aliases, ["agent_id", "external_id"]).values(
                    agent_id=agent_id, external_id=external_id, smith_id=smith_id, created_at=now()
                )
            )
        return bool(result.rowcount)

    # -- files --------------------------------------------------------------------------------

    async def put_file(
        self, smith_id: str, *, filename: str, content_type: str, data: bytes
    ) -> StoredFile:
        stored = StoredFile(
            id=new_id("file"),
            smith_id=smith_id,
            filename=filename,
            content_type=content_type,
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            created_at=now(),
        )
        async with self.db.tx() as conn:
            await conn.execute(
                insert(files).values(
                    id=stored.id,
                    smith_id=smith_id,
                    filename=filename,
                    content_type=content_type,
                    bytes=stored.bytes,
                    sha256=stored.sha256,
                    data=data,
                    created_at=stored.created_at,
                )
            )
        return stored

    async def get_file(self, file_id: str, *, smith_id: str | None = None) -> StoredFile:
        """A file's description; with ``smith_id`` only that smith's own file."""
        query = select(*(c for c in files.c if c.name != "data")).where(files.c.id == file_id)
        if smith_id is not None:
            query = query.where(files.c.smith_id == smith_id)
        async with self.db.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"no file {file_id!r}")
        return _file(row)

    async def file_content(self, file_id: str) -> tuple[StoredFile, bytes]:
        async with self.db.read() as conn:
            row = (await conn.execute(select(files).where(files.c.id == file_id))).mappings().first()
        if row is None:
            raise NotFound(f"no file {file_id!r}")
        return _file(row), bytes(row["data"])

    # -- inbox outcome --------------------------------------------------------------------------

    async def inbox_outcome(self, source: str, dedup_key: str) -> InboxOutcome | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(inbox.c.status, inbox.c.run_id, inbox.c.error).where(
                        inbox.c.source == source, inbox.c.dedup_key == dedup_key
                    )
                )
            ).first()
        if row is None:
            return None
        return InboxOutcome(InboxStatus(row[0]), row[1], row[2])

    async def unanswered(self, lane: str) -> list[JSON]:
        """Messages of a lane with no run (yet): waiting, or skipped while a human held it."""
        statuses = [InboxStatus.PENDING.value, InboxStatus.SKIPPED.value]
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(inbox.c.id, inbox.c.payload, inbox.c.status, inbox.c.received_at)
                    .where(inbox.c.lane == lane, inbox.c.status.in_(statuses))
                    .order_by(inbox.c.id)
                )
            ).mappings()
            return [dict(r) for r in rows]

    # -- the key that signs smith tokens ----------------------------------------------------------

    async def token_key(self) -> bytes:
        """A random key made once and shared through the database, so every replica (and a
        restart) accepts the tokens another one minted."""
        async with self.db.tx() as conn:
            await conn.execute(
                self.db.insert_ignore(cursors, ["name"]).values(
                    name=TOKEN_KEY_CURSOR,
                    value={"key": secrets.token_hex(32)},
                    updated_at=now(),
                )
            )
            value = (
                await conn.execute(select(cursors.c.value).where(cursors.c.name == TOKEN_KEY_CURSOR))
            ).scalar_one()
        return bytes.fromhex(value["key"])


def _conversation(row: RowMapping) -> Conversation:
    return Conversation(
        id=row["id"],
        thread_id=row["thread_id"],
        smith_id=row["smith_id"],
        title=row["title"],
        metadata=dict(row["metadata"] or {}),
        state=row["state"],
        control=row["control"],
        created_at=row["created_at"],
        updated_at=max(row["updated_at"], row["thread_updated_at"]),
    )


def _file(row: RowMapping) -> StoredFile:
    return StoredFile(
        id=row["id"],
        smith_id=row["smith_id"],
        filename=row["filename"],
        content_type=row["content_type"],
        bytes=row["bytes"],
        sha256=row["sha256"],
        created_at=row["created_at"],
    )
