"""The inbox and the outbox under contention: a delivery enters the inbox whole, and an
action's lease fences every write of the sender that holds it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

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
from bot.store.inbox import LaneClaim
from bot.store.runs import PreparedTurn
from bot.store.store import CONTEXT_ONLY, ActionClaim, LeaseLost, Store, ThreadChange


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL every engine sends while the block runs."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


def _message(key: str, thread: str = "test:t1", text: str | None = None) -> InboundMessage:
    return InboundMessage(
        source="test", dedup_key=key, thread_external_id=thread,
        smith_external_id="test:u", text=text or key,
    )


async def _one_reply_in_the_outbox(store: Store) -> str:
    """A turn committed with one REPLY action; returns the action id."""
    await store.inbox_put(_message("k1"), "support")
    (claim,) = await store.claim_lanes(limit=1, lease_seconds=30)
    agent = await store.ensure_agent("support", "Support")
    thread, smith, _ = await store.start_thread(claim.items[0].message, agent.id, history=5)
    run_id = new_id("run")
    at = now()
    run = Run(
        id=run_id, thread_id=thread.id, smith_id=smith.id, agent_id=agent.id, agent_version=None,
        input=[], output_text="hello", stop_reason=StopReason.END_TURN, model="scripted",
        usage=Usage(), rag_results=[], error=None, started_at=at, finished_at=at,
    )
    action = Action(
        id=action_id(run_id, 0), run_id=run_id, thread_id=thread.id, channel="test",
        kind=ActionKind.REPLY, text="hello",
    )
    await store.commit_turn(claim, run, [action], thread_change=ThreadChange())
    return action.id


async def _claim(store: Store, lease_seconds: float) -> ActionClaim:
    (claim,) = await store.claim_actions(limit=5, lease_seconds=lease_seconds)
    return claim


async def test_a_renewed_lease_keeps_the_action_from_other_senders(store: Store) -> None:
    await _one_reply_in_the_outbox(store)
    lease = 0.3
    first = await _claim(store, lease)
    for _ in range(3):
        await asyncio.sleep(lease / 3)
        assert await store.renew_action(first, lease)
    assert await store.claim_actions(limit=5, lease_seconds=lease) == []
    assert await store.action_done(first, "remote-1")
    (entry,) = await store.outbox_entries()
    assert entry.status is OutboxStatus.DONE and entry.remote_id == "remote-1"
    assert not await store.renew_action(first, lease), "a finished action has no lease to renew"


async def test_a_sender_whose_lease_was_taken_over_can_change_nothing(store: Store) -> None:
    await _one_reply_in_the_outbox(store)
    lease = 0.2
    first = await _claim(store, lease)
    assert first.action.attempt == 0
    await asyncio.sleep(lease + 0.05)  # the first sender is stuck past its lease
    second = await _claim(store, 30)
    # The second sender is told an earlier try may have gone out: it reconciles first.
    assert second.action.attempt == 1

    assert not await store.renew_action(first, lease)
    with pytest.raises(LeaseLost):
        await store.action_attempted(first)
    assert not await store.action_done(first, "remote-late")
    (entry,) = await store.outbox_entries()
    # The refusal is on record for operators (two senders were at it).
    assert entry.last_error is not None and "remote-late" in entry.last_error
    assert await store.action_failed(first, "503", retry_at=now(), max_attempts=8) is None
    (entry,) = await store.outbox_entries()
    assert entry.status is OutboxStatus.PENDING and entry.remote_id is None
    assert entry.attempts == 2, "the stale sender's try was not counted"
    # The lease is still the second sender's.
    assert await store.claim_actions(limit=5, lease_seconds=30) == []

    assert await store.action_done(second, "remote-2")
    (entry,) = await store.outbox_entries()
    assert entry.status is OutboxStatus.DONE and entry.remote_id == "remote-2"


async def test_a_failure_under_a_held_lease_reschedules_the_action(store: Store) -> None:
    await _one_reply_in_the_outbox(store)
    claim = await _claim(store, 30)
    await store.action_attempted(claim)
    status = await store.action_failed(claim, "ActionError: 503", retry_at=now(), max_attempts=8)
    assert status is OutboxStatus.PENDING
    again = await _claim(store, 30)
    assert again.action.attempt == 2 and again.token != claim.token


async def test_a_delivery_s_messages_are_claimed_together_under_load(store: Store) -> None:
    # 400 deliveries of a customer's two messages (more rows than one group commit takes),
    # every fifth delivered twice, while workers keep claiming lanes.
    deliveries = [
        [_message(f"t{i}:m1", f"test:t{i}"), _message(f"t{i}:m2", f"test:t{i}")]
        for i in range(400)
    ]
    deliveries += deliveries[::5]
    claimed: dict[str, list[str]] = {}
    storing = True

    async def claim_forever() -> None:
        while storing:
            for claim in await store.claim_lanes(limit=50, lease_seconds=30):
                assert claim.lane not in claimed, "a thread was claimed twice"
                claimed[claim.lane] = [item.message.dedup_key for item in claim.items]
            await asyncio.sleep(0)

    workers = [asyncio.create_task(claim_forever()) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(store.inbox_put_delivery([(m, "support") for m in d]) for d in deliveries)
        )
    finally:
        storing = False
        await asyncio.gather(*workers)
    for claim in await store.claim_lanes(limit=1000, lease_seconds=30):
        claimed[claim.lane] = [item.message.dedup_key for item in claim.items]

    assert sum(new.count(True) for new in results) == 800
    assert [new for new in results[400:]] == [[False, False]] * 80
    assert claimed == {f"support|test:t{i}": [f"t{i}:m1", f"t{i}:m2"] for i in range(400)}


async def test_only_the_newest_message_of_a_delivery_starts_a_turn(store: Store) -> None:
    # The customer's follow-up came first on its own (a "replied" notification) ...
    assert await store.inbox_put(_message("m2", text="follow-up"), "support")
    (claim,) = await store.claim_lanes(limit=5, lease_seconds=30)
    assert [item.message.text for item in claim.items] == ["follow-up"]
    await store.release_lane(claim, status=InboxStatus.DONE)
    # ... then the whole conversation: its opening message is new here, but it is older than
    # a message already taken, so it does not start a turn of its own.
    new = await store.inbox_put_delivery(
        [(_message("m1", text="opening"), "support"), (_message("m2", text="follow-up"), "support")]
    )
    assert new == [True, False]
    assert await store.claim_lanes(limit=5, lease_seconds=30) == []
    (row,) = await store.inbox_rows([("test", "m1")])
    assert row.status is InboxStatus.SKIPPED and row.error == CONTEXT_ONLY
    assert row.finished_at is not None


async def test_actions_wait_for_earlier_ones_of_their_thread_on_the_same_channel_only(
    store: Store,
) -> None:
    """A webhook announcement that keeps failing must not hold up the customer's replies."""
    await store.inbox_put(_message("k1"), "support")
    (claim,) = await store.claim_lanes(limit=1, lease_seconds=30)
    agent = await store.ensure_agent("support", "Support")
    thread, smith, _ = await store.start_thread(claim.items[0].message, agent.id, history=5)
    run_id = new_id("run")
    at = now()
    run = Run(
        id=run_id, thread_id=thread.id, smith_id=smith.id, agent_id=agent.id, agent_version=None,
        input=[], output_text="hello", stop_reason=StopReason.ESCALATED, model="scripted",
        usage=Usage(), rag_results=[], error=None, started_at=at, finished_at=at,
    )
    announce, reply, note = (
        Action(id=action_id(run_id, n), run_id=run_id, thread_id=thread.id, channel=channel,
               kind=kind, text="x")
        for n, (channel, kind) in enumerate([("notify", ActionKind.ANNOUNCE),
                                             ("test", ActionKind.REPLY),
                                             ("test", ActionKind.NOTE)])
    )
    await store.commit_turn(claim, run, [announce, reply, note], thread_change=ThreadChange())
    claimed = await store.claim_actions(limit=5, lease_seconds=30)
    # The announcement and the thread's first reply go out side by side; the note waits for
    # the reply on its own channel.
    assert sorted(c.action.id for c in claimed) == sorted([announce.id, reply.id])
    failing = next(c for c in claimed if c.action.id == announce.id)
    assert await store.action_failed(failing, "webhook answered 500", retry_at=now() + 60,
                                     max_attempts=8) is OutboxStatus.PENDING
    sent = next(c for c in claimed if c.action.id == reply.id)
    assert await store.action_done(sent, "remote-1")
    (following,) = await store.claim_actions(limit=5, lease_seconds=30)
    assert following.action.id == note.id


async def _three_lanes(store: Store) -> str:
    """Three tickets waiting on their lanes; the agent's id."""
    for n in range(3):
        assert await store.inbox_put(_message(f"s{n}", f"test:s{n}"), "support")
    return (await store.ensure_agent("support", "Support")).id


async def test_a_claim_leases_its_lanes_together_and_reads_their_inputs_without_savepoints(store: Store) -> None:
    agent_id = await _three_lanes(store)
    with _statements() as statements:
        claims = await store.claim_turns(
            limit=5, lease_seconds=30, agent_ids={"support": agent_id}, history=5
        )

    assert sorted(claim.lane for claim in claims) == [f"support|test:s{n}" for n in range(3)]
    assert all(claim.prepared is not None and claim.prepared.started for claim in claims)
    assert statements and not [s for s in statements if "SAVEPOINT" in s.upper()]
    # The three lanes are leased by one statement, not one each (on PostgreSQL the claim's
    # one statement, ``WITH … UPDATE lanes …``).
    assert len([s for s in statements if "UPDATE lanes" in s]) == 1


async def test_a_lane_whose_inputs_fail_to_read_is_claimed_without_them(store: Store) -> None:
    """When reading one lane's inputs with the claim fails, what it wrote is undone and its
    turn reads them itself; the other lanes come with theirs, and every lane is leased."""
    agent_id = await _three_lanes(store)

    def prepare(conn: Connection, claim: LaneClaim) -> PreparedTurn | None:
        message = claim.items[0].message
        prepared = store.runs.prepare_turn_in(conn, message, agent_id, 5)
        if message.thread_external_id == "test:s1":
            raise RuntimeError("cannot read this one")
        return prepared

    claims = await store.inbox.claim_lanes(limit=5, lease_seconds=30, prepare=prepare)

    prepared = {claim.lane: claim.prepared for claim in claims}
    assert sorted(prepared) == [f"support|test:s{n}" for n in range(3)]
    assert prepared["support|test:s1"] is None
    assert prepared["support|test:s0"] is not None and prepared["support|test:s2"] is not None
    assert await store.find_thread(agent_id, "test:s1") is None  # its writes undone
    assert await store.find_thread(agent_id, "test:s0") is not None
    assert await store.find_thread(agent_id, "test:s2") is not None
    assert await store.claim_lanes(limit=5, lease_seconds=30) == []
    # The thread is started by the turn's own reads, as when no claim carried inputs.
    thread, _, _ = await store.start_thread(_message("s1", "test:s1"), agent_id, history=5)
    assert thread.external_id == "test:s1"


async def test_a_turn_s_first_action_is_handed_over_only_when_none_of_its_thread_waits(
    store: Store,
) -> None:
    agent = await store.ensure_agent("support", "Support")

    async def turn(key: str, thread_external_id: str) -> tuple[str, ActionClaim | None]:
        await store.inbox_put(_message(key, thread_external_id), "support")
        (claim,) = await store.claim_lanes(limit=1, lease_seconds=30)
        thread, smith, _ = await store.start_thread(claim.items[0].message, agent.id, history=5)
        run_id, at = new_id("run"), now()
        run = Run(
            id=run_id, thread_id=thread.id, smith_id=smith.id, agent_id=agent.id,
            agent_version=None, input=[], output_text="hi", stop_reason=StopReason.END_TURN,
            model="scripted", usage=Usage(), rag_results=[], error=None, started_at=at,
            finished_at=at,
        )
        action = Action(
            id=action_id(run_id, 0), run_id=run_id, thread_id=thread.id, channel="test",
            kind=ActionKind.REPLY, text=f"reply to {key}",
        )
        handed = await store.commit_turn(
            claim, run, [action], thread_change=ThreadChange(title="t"), hand_over_lease=30
        )
        return action.id, handed

    first, handed = await turn("k1", "test:t1")
    assert handed is not None and handed.action.id == first
    assert handed.thread.title == "t"  # the thread as the turn left it
    # The first reply is still being sent: the next one of its thread waits for it ...
    second, waiting = await turn("k2", "test:t1")
    assert waiting is None
    # ... and another thread's does not.
    other, handed_other = await turn("k3", "test:t2")
    assert handed_other is not None and handed_other.action.id == other
    assert await store.action_done(handed, "remote-1")
    (claimed,) = await store.claim_actions(limit=5, lease_seconds=30)
    assert claimed.action.id == second
    assert await store.action_done(claimed, "remote-2")
    _, handed_again = await turn("k4", "test:t1")
    assert handed_again is not None


async def test_a_claim_reads_the_memories_of_a_known_customer_only(store: Store) -> None:
    """A customer created by the claim has nothing remembered yet: no read for it."""
    from sqlalchemy import insert

    from bot.store.schema import memories

    agent_id = (await store.ensure_agent("support", "Support")).id
    known = await store.ensure_smith("test:known", agent_id)
    await store.db.run_tx(
        lambda conn: conn.execute(
            insert(memories).values(smith_id=known.id, fact="prefers email", created_at=now())
        )
    )
    for key, who in (("n1", "test:new"), ("k1", "test:known")):
        message = InboundMessage(
            source="test", dedup_key=key, thread_external_id=f"test:{key}",
            smith_external_id=who, text="hello",
        )
        assert await store.inbox_put(message, "support")
    with _statements() as statements:
        claims = await store.claim_turns(
            limit=5, lease_seconds=30, agent_ids={"support": agent_id}, history=5
        )

    inputs = {
        claim.prepared.smith.external_id: claim.prepared.inputs
        for claim in claims
        if claim.prepared is not None
    }
    assert inputs["test:known"].memories == ("prefers email",)
    assert inputs["test:new"].memories == ()
    assert len([s for s in statements if "FROM memories" in s]) == 1


async def test_a_turn_s_lane_is_not_claimed_again_until_its_lease_runs_out(store: Store) -> None:
    """A turn's claim (with its reads, and a new ticket started) leaves the lane alone while
    its lease holds; once the lease runs out (the worker died) the next claim takes the same
    messages again, the ticket the first claim started now known, with nothing written twice."""
    agent_id = (await store.ensure_agent("support", "Support")).id
    assert await store.inbox_put(_message("k1", "test:t1"), "support")
    agents = {"support": agent_id}
    (first,) = await store.claim_turns(limit=5, lease_seconds=0.5, agent_ids=agents, history=5)
    assert first.prepared is not None and first.prepared.started and not first.recovered
    assert await store.inbox_put(_message("k2", "test:t1"), "support")
    assert await store.claim_turns(limit=5, lease_seconds=30, agent_ids=agents, history=5) == []
    await asyncio.sleep(0.6)

    (again,) = await store.claim_turns(limit=5, lease_seconds=30, agent_ids=agents, history=5)
    assert again.recovered and again.token != first.token
    assert [item.message.dedup_key for item in again.items] == ["k1", "k2"]
    assert again.prepared is not None and not again.prepared.started
    assert again.prepared.thread == first.prepared.thread
    assert again.prepared.smith == first.prepared.smith
    assert len(await store.list_smiths(agent_id=agent_id)) == 1
    with pytest.raises(LeaseLost):
        await store.release_lane(first, status=InboxStatus.DONE)
