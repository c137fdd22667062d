"""The console's inbox query: which threads need a person, and in what order."""

from __future__ import annotations

from bot.domain import Control, StopReason, ThreadState
from bot.store.attention import needing_a_person
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
    assert [t["waiting_seconds"] for t in found] == [490, 995, 800, 95]
