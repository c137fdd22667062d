"""Customer satisfaction: what customers said about the bot's answers, kept with the run.

A verdict is ``up`` or ``down`` (and perhaps a comment), given by one rater on one run: rating
the same answer again replaces the earlier verdict, and taking a reaction back removes it. The
analytics (``bot.store.analytics``) count them per thread's window and channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, RowMapping

from bot.domain import JSON, NotFound, Rating, new_id, now
from bot.store.database import Database
from bot.store.schema import feedback, outbox, runs

RATINGS: Final = ("up", "down")
COMMENT_MAX: Final = 2000


@dataclass(frozen=True, slots=True)
class Feedback:
    id: str
    run_id: str
    thread_id: str
    rater: str
    rating: Rating
    comment: str | None
    source: str
    created_at: float

    def to_json(self) -> JSON:
        return {"id": self.id, "object": "feedback", "run_id": self.run_id,
                "thread_id": self.thread_id, "rating": self.rating, "comment": self.comment,
                "source": self.source, "created_at": int(self.created_at)}


def _feedback(row: RowMapping) -> Feedback:
    rating: Rating = "up" if row["rating"] == "up" else "down"
    return Feedback(row["id"], row["run_id"], row["thread_id"], row["rater"], rating,
                    row["comment"], row["source"], row["created_at"])


class Feedbacks:
    """The ``feedback`` table."""

    def __init__(self, db: Database):
        self._db = db

    async def rate(
        self, run_id: str, *, rater: str, rating: Rating, comment: str | None = None,
        source: str, thread_id: str | None = None,
    ) -> Feedback:
        """Record (or replace) ``rater``'s verdict on a run; NotFound for an unknown run, or a
        run outside ``thread_id`` when it is given (a run of another conversation)."""
        if rating not in RATINGS:
            raise ValueError("rating is up or down")
        text = (comment or "").strip()[:COMMENT_MAX] or None

        def work(conn: Connection) -> Feedback:
            run_thread = conn.execute(
                select(runs.c.thread_id).where(runs.c.id == run_id)
            ).scalar_one_or_none()
            if run_thread is None or (thread_id is not None and run_thread != thread_id):
                raise NotFound(run_id)
            at = now()
            existing = conn.execute(
                select(feedback.c.id).where(feedback.c.run_id == run_id,
                                            feedback.c.rater == rater)
            ).scalar_one_or_none()
            values = {"rating": rating, "comment": text, "source": source, "created_at": at}
            if existing is None:
                existing = new_id("fb")
                conn.execute(feedback.insert().values(
                    id=existing, run_id=run_id, thread_id=run_thread, rater=rater, **values))
            else:
                conn.execute(update(feedback).where(feedback.c.id == existing).values(**values))
            return Feedback(existing, run_id, run_thread, rater, rating, text, source, at)

        return await self._db.run_tx(work)

    async def withdraw(self, run_id: str, *, rater: str, rating: Rating) -> bool:
        """Take back ``rater``'s verdict on a run if it is still ``rating`` (a removed
        reaction); whether there was one."""

        def work(conn: Connection) -> bool:
            return bool(conn.execute(
                delete(feedback).where(feedback.c.run_id == run_id, feedback.c.rater == rater,
                                       feedback.c.rating == rating)
            ).rowcount)

        return await self._db.run_tx(work)

    async def run_of_message(self, channel: str, remote_id: str) -> str | None:
        """The run whose reply a channel delivered as message ``remote_id`` (what its send
        returned), so a reaction on that message rates that answer; None if the bot sent none."""
        query = (select(outbox.c.run_id)
                 .where(outbox.c.channel == channel, outbox.c.remote_id == remote_id,
                        outbox.c.kind == "reply")
                 .order_by(outbox.c.seq.desc()).limit(1))
        return await self._db.run_read(lambda conn: conn.execute(query).scalar_one_or_none())

    async def of_thread(self, thread_id: str) -> list[Feedback]:
        def work(conn: Connection) -> list[Feedback]:
            rows = conn.execute(
                select(feedback).where(feedback.c.thread_id == thread_id)
                .order_by(feedback.c.created_at, feedback.c.id)
            ).mappings()
            return [_feedback(r) for r in rows]

        return await self._db.run_read(work)
