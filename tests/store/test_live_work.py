"""The live work tables hold exactly the pending messages and actions, whichever way a row
enters or leaves ``pending`` (their triggers, migration 0015): the claims read nothing else."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from bot.domain import (
    Action,
    ActionKind,
    InboundMessage,
    InboxStatus,
    OutboxStatus,
    Run,
    StopReason,
    Usage,
    action_id,
    new_id,
    now,
)
from bot.store.erasure import Erasures
from bot.store.schema import inbox, inbox_live, outbox, outbox_live
from bot.store.store import Store, ThreadChange


def _message(key: str, thread: str) -> InboundMessage:
    return InboundMessage(
        source="test", dedup_key=key, thread_external_id=thread,
        smith_external_id=f"{thread}:user", text=key,
    )


async def _live(store: Store) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
    """(the pending inbox rows, the rows of ``inbox_live``) as (id, lane)."""

    def work(conn: Connection) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
        pending = select(inbox.c.id, inbox.c.lane).where(inbox.c.status == "pending")
        return (
            {(r[0], r[1]) for r in conn.execute(pending)},
            {(r[0], r[1]) for r in conn.execute(select(inbox_live))},
        )

    return await store.db.run_read(work)


async def _live_actions(store: Store) -> tuple[set[tuple[int, str, str]], set[tuple[int, str, str]]]:
    def work(conn: Connection) -> tuple[set[tuple[int, str, str]], set[tuple[int, str, str]]]:
        pending = select(outbox.c.seq, outbox.c.thread_id, outbox.c.channel).where(
            outbox.c.status == "pending"
        )
        return (
            {tuple(r) for r in conn.execute(pending)},
            {tuple(r) for r in conn.execute(select(outbox_live))},
        )

    return await store.db.run_read(work)


async def test_the_live_inbox_follows_every_change_of_a_message_s_status(store: Store) -> None:
    # A delivery whose older message was taken before: that one never counts as live work.
    assert await store.inbox_put(_message("m2", "test:a"), "support")
    assert await store.inbox_put_delivery(
        [(_message("m1", "test:a"), "support"), (_message("m2", "test:a"), "support")]
    ) == [True, False]
    for key in ("n1", "n2", "n3"):
        assert await store.inbox_put(_message(key, f"test:{key}"), "support")
    pending, live = await _live(store)
    assert len(pending) == 4 and live == pending

    claims = {c.lane: c for c in await store.claim_lanes(limit=10, lease_seconds=30)}
    assert len(claims) == 4
    # Put back for a retry: still live; out of attempts: failed, and gone.
    await store.release_lane(claims["support|test:n1"], status=InboxStatus.PENDING)
    await store.release_lane(claims["support|test:n2"], status=InboxStatus.PENDING, max_attempts=1)
    await store.release_lane(claims["support|test:n3"], status=InboxStatus.SKIPPED)
    pending, live = await _live(store)
    assert {lane for _, lane in live} == {"support|test:n1", "support|test:a"}
    assert live == pending

    # A turn finishes its messages, and its action is live until it is sent.
    claim = claims["support|test:a"]
    agent = await store.ensure_agent("support", "Support")
    found = await store.start_thread(claim.items[0].message, agent.id, history=5)
    assert found is not None
    thread, smith, _ = found
    run_id, at = new_id("run"), now()
    run = Run(
        id=run_id, thread_id=thread.id, smith_id=smith.id, agent_id=agent.id, agent_version=None,
        input=[], output_text="hi", stop_reason=StopReason.END_TURN, model="scripted",
        usage=Usage(), rag_results=[], error=None, started_at=at, finished_at=at,
    )
    actions = [
        Action(id=action_id(run_id, n), run_id=run_id, thread_id=thread.id, channel="test",
               kind=ActionKind.REPLY, text="hi")
        for n in range(2)
    ]
    await store.commit_turn(claim, run, actions, thread_change=ThreadChange())
    pending, live = await _live(store)
    assert {lane for _, lane in live} == {"support|test:n1"} and live == pending
    pending_actions, live_actions = await _live_actions(store)
    assert len(live_actions) == 2 and live_actions == pending_actions

    (first,) = await store.claim_actions(limit=5, lease_seconds=30)
    # A failure to retry keeps it live; sent, it is gone; dead-lettered, gone too.
    assert await store.action_failed(
        first, "503", retry_at=now(), max_attempts=5
    ) is OutboxStatus.PENDING
    assert (await _live_actions(store))[1] == pending_actions
    (first,) = await store.claim_actions(limit=5, lease_seconds=30)
    assert await store.action_done(first, "remote-1")
    (second,) = await store.claim_actions(limit=5, lease_seconds=30)
    assert await store.action_failed(second, "400", retry_at=now(), max_attempts=1) is (
        OutboxStatus.DEAD
    )
    assert await _live_actions(store) == (set(), set())

    # Erasing the smith of a pending message takes its live row along.
    (left,) = await store.claim_lanes(limit=5, lease_seconds=0.001)
    await store.release_lane(left, status=InboxStatus.PENDING)
    assert (await _live(store))[1]
    owner = await store.start_thread(left.items[0].message, agent.id, history=5)
    assert owner is not None
    await Erasures(store.db).erase_smith(owner[1].id, requested_by="test")
    assert await _live(store) == (set(), set())
