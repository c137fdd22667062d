"""The console's inbox: threads that need a person (escalated, or held by one and not closed),
most urgent first, then longest waiting.

Priority and reason come from the thread's latest ESCALATE call (``normal`` and nothing when
the escalation came from elsewhere). The customer has been waiting since their first message
that nothing answered: the first one after the last answer — a person's reply, or a bot turn
that answered (a turn that escalated or failed answered nothing: it handed the thread on) — as
the inbox received it. When a person answered last, nobody is waiting (``waiting_since`` null,
listed after those who are); a thread with no message on record waits since its escalation, or
since it last changed hands. The last message is the customer's latest words: a turn's, or one
kept while a person holds the thread.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from bot.domain import JSON, Control, InboxStatus, StopReason, ThreadState
from bot.store.analytics import ESCALATE_TOOL, question_of
from bot.store.database import Database
from bot.store.inbox import lane_key
from bot.store.schema import agents, inbox, person_messages, runs, smiths, threads, tool_calls

PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
DEFAULT_PRIORITY = "normal"
SHOWN = 200
# Turns that leave the customer waiting for a person rather than answer them.
HANDED_ON = (StopReason.ESCALATED.value, StopReason.ERROR.value, StopReason.GUARDRAIL.value,
             StopReason.HANDOFF.value)


async def needing_a_person(db: Database, *, at: float) -> list[JSON]:
    """Every thread a person should look at, as the inbox lists it."""
    return await db.run_read(lambda conn: _needing(conn, at))


def _needing(conn: Connection, at: float) -> list[JSON]:
    waiting = conn.execute(
        select(threads, smiths.c.display_name, smiths.c.external_id.label("smith_external_id"),
               agents.c.slug.label("agent_slug"))
        .join(smiths, smiths.c.id == threads.c.smith_id)
        .join(agents, agents.c.id == threads.c.agent_id)
        .where(threads.c.state != ThreadState.CLOSED.value,
               or_(threads.c.state == ThreadState.ESCALATED.value,
                   threads.c.control == Control.HUMAN.value))
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
    # When the customer wrote (by thread), and when they were last answered.
    written: dict[str, list[float]] = {i: [] for i in ids}
    answered: dict[str, float] = {}
    run_written: dict[str, tuple[str, float]] = {}
    for row in conn.execute(
        select(runs.c.id, runs.c.thread_id, runs.c.input, runs.c.started_at,
               runs.c.finished_at, runs.c.stop_reason)
        .where(runs.c.thread_id.in_(ids))
        .order_by(runs.c.started_at)
    ).mappings():
        question = question_of(row["input"])
        if question:
            last_question[row["thread_id"]] = (row["started_at"], question[:280])
        run_written[row["id"]] = (row["thread_id"], row["started_at"])
        if row["finished_at"] is not None and row["stop_reason"] not in HANDED_ON:
            answered[row["thread_id"]] = max(answered.get(row["thread_id"], 0.0),
                                             row["finished_at"])
    for row in conn.execute(
        select(person_messages.c.thread_id, person_messages.c.created_at)
        .where(person_messages.c.thread_id.in_(ids))
    ).mappings():
        answered[row["thread_id"]] = max(answered.get(row["thread_id"], 0.0), row["created_at"])
    # Every message of the thread's lane as the inbox received it. What the customer wrote
    # after the last turn (kept while a person holds the thread) is their last message: the
    # inbox must show that they wrote back.
    lanes = {lane_key(t["agent_slug"], t["external_id"]): t["id"] for t in waiting}
    kept = (InboxStatus.PENDING.value, InboxStatus.SKIPPED.value)
    for row in conn.execute(
        select(inbox.c.lane, inbox.c.payload, inbox.c.received_at, inbox.c.status,
               inbox.c.run_id)
        .where(inbox.c.lane.in_(list(lanes)))
        .order_by(inbox.c.received_at, inbox.c.id)
    ).mappings():
        thread_id = lanes[row["lane"]]
        written[thread_id].append(row["received_at"])
        run_written.pop(row["run_id"], None)  # the turn's message: known by when it arrived
        if row["status"] not in kept:
            continue
        text = row["payload"].get("text") if isinstance(row["payload"], dict) else None
        known = last_question.get(thread_id)
        if isinstance(text, str) and text.strip() and (known is None
                                                        or row["received_at"] >= known[0]):
            last_question[thread_id] = (row["received_at"], " ".join(text.split())[:280])
    for thread_id, started in run_written.values():  # a turn whose inbox rows are gone
        written[thread_id].append(started)
    items = []
    for thread in waiting:
        escalation = escalations.get(thread["id"], {})
        priority = str(escalation.get("priority") or DEFAULT_PRIORITY)
        if priority not in PRIORITY_RANK:
            priority = DEFAULT_PRIORITY
        last_answer = answered.get(thread["id"])
        unanswered = [t for t in written[thread["id"]] if last_answer is None or t > last_answer]
        since: float | None = min(unanswered) if unanswered else None
        if since is None and last_answer is None:
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
            "waiting_seconds": None if since is None else round(max(0.0, at - since), 1),
        })
    items.sort(key=lambda i: (PRIORITY_RANK[i["priority"]], i["waiting_since"] is None,
                              i["waiting_since"] or 0.0, i["id"]))
    return items


def _customer(display_name: str | None, external_id: str | None) -> str:
    """How the inbox names the customer: their name, their id, or "Guest" for a visitor who
    never said who they are (the same test as ``Smith.is_anonymous``)."""
    if display_name:
        return display_name
    if external_id is None or external_id.startswith("anon:"):
        return "Guest"
    return external_id
