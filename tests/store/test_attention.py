"""The console's inbox query: which threads need a person, and in what order."""

from __future__ import annotations

from bot.domain import Control, InboxStatus, StopReason, ThreadState, new_id
from bot.store.attention import needing_a_person
from bot.store.inbox import lane_key
from bot.store.schema import inbox, person_messages
from bot.store.store import Store
from tests.store.test_analytics import T0, Seed


async def test_most_urgent_first_then_longest_waiting(store: Store) -> None:
    agent = await store.ensure_agent("support", "Support")
    ada = await store.ensure_smith("web:ada", agent.id, display_name="Ada")
    guest = await store.ensure_smith("anon:visitor", agent.id)
    seed, anonymous = Seed(store, agent.id, ada.id), Seed(store, agent.id, guest.id)
    held = {"state": ThreadState.ESCALATED, "control": Control.HUMAN}

    normal_old = await seed.thread("web", T0, **held)
    await seed.run(normal_old, T0, T0 + 5, StopReason.ESCALATED, question="Refund please",
                   escalate={"reason": "refund", "priority": "normal"})
    urgent = await anonymous.thread("web", T0 + 500, **held)
    await anonymous.run(urgent, T0 + 500, T0 + 510, StopReason.ESCALATED,
                        question="Site is down!", escalate={"reason": "outage",
                                                            "priority": "urgent"})
    normal_new = await seed.thread("slack", T0 + 900, **held)
    await seed.run(normal_new, T0 + 900, T0 + 905, StopReason.ESCALATED, question="Help",
                   escalate={"reason": "other"})  # no priority: normal
    # A person took this one without an escalation: it waits since the thread last changed.
    taken = await seed.thread("slack", T0 + 100, control=Control.HUMAN, updated=T0 + 200)
    # Not waiting for anyone: the bot holds it, or it is closed.
    await seed.thread("web", T0 + 50)
    await seed.thread("web", T0 + 60, state=ThreadState.CLOSED, control=Control.HUMAN)

    found = await needing_a_person(store.db, at=T0 + 1000)
    assert [(t["id"], t["priority"]) for t in found] == [
        (urgent, "urgent"), (normal_old, "normal"), (taken, "normal"), (normal_new, "normal")]
    assert found[0]["customer"] == "Guest" and found[1]["customer"] == "Ada"
    assert found[0]["reason"] == "outage" and found[0]["last_message"] == "Site is down!"
    # Waiting since the message each escalating turn took, not since the escalation.
    assert [t["waiting_seconds"] for t in found] == [500, 1000, 800, 100]


async def test_waiting_is_counted_from_the_first_message_nothing_answered(store: Store) -> None:
    """Seeded times: the inbox's receipt of each message, bot turns, a person's replies."""
    agent = await store.ensure_agent("support", "Support")
    ada = await store.ensure_smith("web:ada", agent.id, display_name="Ada")
    seed = Seed(store, agent.id, ada.id)
    held = {"state": ThreadState.ESCALATED, "control": Control.HUMAN}

    async def message(thread_id: str, received: float, status: InboxStatus,
                      run_id: str | None = None) -> None:
        lane = lane_key("support", f"web:{thread_id}")
        values = {"source": "web", "dedup_key": new_id("msg"), "lane": lane,
                  "payload": {"text": "hello?"}, "status": status.value, "run_id": run_id,
                  "received_at": received}
        await store.db.run_tx(lambda conn: conn.execute(inbox.insert().values(**values)))

    async def person_reply(thread_id: str, at: float) -> None:
        values = {"id": new_id("pmsg"), "thread_id": thread_id, "author_name": "Sam",
                  "text": "On it.", "created_at": at}
        await store.db.run_tx(lambda conn: conn.execute(person_messages.insert().values(**values)))

    # Answered by the bot, then a question the bot took only a minute later and escalated,
    # then another message kept for the person: waiting since the question arrived.
    waits = await seed.thread("web", T0, **held)
    answered = await seed.run(waits, T0 + 5, T0 + 10, StopReason.END_TURN, question="hi")
    await message(waits, T0, InboxStatus.DONE, answered)
    escalated = await seed.run(waits, T0 + 160, T0 + 170, StopReason.ESCALATED, question="refund?",
                               escalate={"reason": "refund"})
    await message(waits, T0 + 100, InboxStatus.DONE, escalated)
    await message(waits, T0 + 300, InboxStatus.SKIPPED)
    # A person answered after the escalation, and the customer has not written since.
    replied = await seed.thread("web", T0, **held)
    await seed.run(replied, T0 + 50, T0 + 55, StopReason.ESCALATED, question="help",
                   escalate={"reason": "other"})
    await person_reply(replied, T0 + 400)
    # A person answered, then the customer wrote twice: waiting since the first of those.
    wrote_back = await seed.thread("web", T0, **held)
    await seed.run(wrote_back, T0 + 20, T0 + 25, StopReason.ESCALATED, question="help",
                   escalate={"reason": "other"})
    await person_reply(wrote_back, T0 + 400)
    await message(wrote_back, T0 + 600, InboxStatus.SKIPPED)
    await message(wrote_back, T0 + 700, InboxStatus.SKIPPED)

    found = await needing_a_person(store.db, at=T0 + 1000)
    assert [(t["id"], t["waiting_since"], t["waiting_seconds"]) for t in found] == [
        (waits, T0 + 100, 900), (wrote_back, T0 + 600, 400), (replied, None, None)]
