"""What people on the support side wrote to a customer through the operator API: kept with the
thread, so the customer's channel can show it (the web widget reads it live) and the thread's
transcript has both sides."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.engine import RowMapping

from bot.domain import JSON, new_id, now
from bot.store.database import Database
from bot.store.schema import person_messages


@dataclass(frozen=True, slots=True)
class PersonMessage:
    id: str
    thread_id: str
    author_name: str
    text: str
    created_at: float

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "object": "thread.message",
            "thread_id": self.thread_id,
            "role": "person",
            "author": {"name": self.author_name},
            "content": self.text,
            "created_at": self.created_at,
        }


def _message(row: RowMapping) -> PersonMessage:
    return PersonMessage(
        id=row["id"],
        thread_id=row["thread_id"],
        author_name=row["author_name"],
        text=row["text"],
        created_at=row["created_at"],
    )


class PersonMessages:
    """The ``person_messages`` table."""

    def __init__(self, db: Database):
        self.db = db

    async def add(self, thread_id: str, *, author_name: str, text: str) -> PersonMessage:
        message = PersonMessage(new_id("pmsg"), thread_id, author_name, text, now())
        statement = insert(person_messages).values(
            id=message.id,
            thread_id=thread_id,
            author_name=author_name,
            text=text,
            created_at=message.created_at,
        )
        await self.db.run_tx(lambda conn: conn.execute(statement))
        return message

    async def of_thread(
        self, thread_id: str, *, after: float | None = None, limit: int = 1000
    ) -> list[PersonMessage]:
        """The thread's messages, oldest first; with ``after``, only those written later."""
        query = select(person_messages).where(person_messages.c.thread_id == thread_id)
        if after is not None:
            query = query.where(person_messages.c.created_at > after)
        query = query.order_by(person_messages.c.created_at, person_messages.c.id).limit(limit)
        return await self.db.run_read(
            lambda conn: [_message(r) for r in conn.execute(query).mappings()]
        )
