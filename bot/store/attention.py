"""The console's inbox: threads that need a person (escalated, or held by one and not closed),
most urgent first, then longest waiting.

Priority and reason come from the thread's latest ESCALATE call (``normal`` and nothing when
the escalation came from elsewhere); the customer has been waiting since that escalation, or
since the thread last changed hands when a person took it without one. The last message is the
customer's latest words: a turn's, or one kept while a person holds the thread.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, literal_column, or_, select
from sqlalchemy.engine import Connection

from bot.domain import JSON, Control, InboxStatus, StopReason, ThreadState
from bot.store.analytics import ESCALATE_TOOL, question_of
from bot.store.database import Database
from bot.store.inbox import lane_key
from bot.store.schema import agents, inbox, runs, smiths, threads, tool_calls

# The predicate of ``ix_threads_needing_person`` (``bot.store.schema.NEEDING_PERSON``), with
# literals so the databases can prove the index holds every row the query wants.
_NEEDING_PERSON = and_(
    threads.c.state != literal_column(f"'{ThreadState.CLOSED.value}'"),
    or_(threads.c.state == literal_column(f"'{ThreadState.ESCALATED.value}'"),
        threads.c.control == literal_column(f"'{Control.HUMAN.value}'")),
)

PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
DEFAULT_PRIORITY = "normal"
SHOWN = 200


async def needing_a_person(db: Database, *, at: float) -> list[JSON]:
    """Every thread a person should look at, as the inbox lists it."""
    return await db.run_read(lambda conn: _needing(conn, at))


def _needing(conn: Connection, at: float) -> list[JSON]:
    waiting = conn.execute(
        select(threads, smiths.c.display_name, smiths.c.external_id.label("smith_external_id"),
               agents.c.slug.label("agent_slug"))
        .join(smiths, smiths.c.id == threads.c.smith_id)
        .join(agents, agents.c.id == threads.c.agent_id)
        .where(_NEEDING_PERSON)
        .order_by(threads.c.updated_at).limit(SHOWN)
    ).mappings().all()
    ids = [t["id"] for t in waiting]
    if not ids:
        return []
    escalations: dict[str, dict[str, Any]] = {}
    for row in conn.execute(
        select(runs.c.thread_id, runs.c.finished_at, tool_calls.c.arguments)
        .join(tool_calls, and_(tool_calls.c.run_id == runs.c.id,
                               tool_calls.c.name == ESCALATE_TOOL), isouter=True)
        .where(runs.c.thread_id.in_(ids), runs.c.stop_reason == StopReason.ESCALATED.value)
        .order_by(runs.c.finished_at)
    ).mappings():
        arguments = row["arguments"] if isinstance(row["arguments"], dict) else {}
        escalations[row["thread_id"]] = {"at": row["finished_at"], **arguments}
    last_question: dict[str, tuple[float, str]] = {}
    for row in conn.execute(
        select(runs.c.thread_id, runs.c.input, runs.c.started_at)
        .where(runs.c.thread_id.in_(ids))
        .order_by(runs.c.started_at)
    ).mappings():
        question = question_of(row["input"])
        if question:
            last_question[row["thread_id"]] = (row["started_at"], question[:280])
    # What the customer wrote after the last turn (kept while a person holds the thread) is
    # their last message: the inbox must show that they wrote back.
    lanes = {lane_key(t["agent_slug"], t["external_id"]): t["id"] for t in waiting}
    for row in conn.execute(
        select(inbox.c.lane, inbox.c.payload, inbox.c.received_at)
        .where(inbox.c.status.in_([InboxStatus.PENDING.value, InboxStatus.SKIPPED.value]),
               inbox.c.lane.in_(list(lanes)))
        .order_by(inbox.c.received_at, inbox.c.id)
    ).mappings():
        text = row["payload"].get("text") if isinstance(row["payload"], dict) else None
        known = last_question.get(lanes[row["lane"]])
        if isinstance(text, str) and text.strip() and (known is None
                                                        or row["received_at"] >= known[0]):
            last_question[lanes[row["lane"]]] = (row["received_at"],
                                                 " ".join(text.split())[:280])
    items = []
    for thread in waiting:
        escalation = escalations.get(thread["id"], {})
        priority = str(escalation.get("priority") or DEFAULT_PRIORITY)
        if priority not in PRIORITY_RANK:
            priority = DEFAULT_PRIORITY
        since = float(escalation.get("at") or thread["updated_at"])
        items.append({
            "id": thread["id"],
            "object": "inbox.thread",
            "channel": thread["channel"],
            "state": thread["state"],
            "control": thread["control"],
            "title": thread["title"],
            "customer": _customer(thread["display_name"], thread["smith_external_id"]),
            "priority": priority,
            "reason": str(escalation.get("reason") or "") or None,
            "last_message": last_question.get(thread["id"], (0.0, None))[1],
            "waiting_since": since,
            "waiting_seconds": round(max(0.0, at - since), 1),
        })
    items.sort(key=lambda i: (PRIORITY_RANK[i["priority"]], i["waiting_since"], i["id"]))
    return items


def _customer(display_name: str | None, external_id: str | None) -> str:
    """How the inbox names the customer: their name, their id, or "Guest" for a visitor who
    never said who they are (the same test as ``Smith.is_anonymous``)."""
    if display_name:
        return display_name
    if external_id is None or external_id.startswith("anon:"):
        return "Guest"
    return external_id
