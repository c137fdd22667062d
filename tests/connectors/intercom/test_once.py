"""Answered once, whatever the timing: a send slower than its lease, a delivery that carries
two of the customer's messages, and both under load with redeliveries."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.domain import OutboxStatus
from tests.connectors.intercom.conftest import deliver, running_app, settled, wait_until
from tests.fakes.intercom import FakeIntercom

LEASE = 2.0
REPLY_PATH = r"/conversations/\d+/reply"


async def test_a_send_slower_than_its_lease_is_made_once(
    db_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    conversations = [
        fake.start_conversation(fake.add_contact(), f"<p>question {i}</p>") for i in range(4)
    ]
    # Every reply takes effect only after more than the lease: another sender that took the
    # action when the lease ran out would find nothing sent and post it again.
    fake.stall("POST", REPLY_PATH, seconds=LEASE * 1.5, times=100)
    async with running_app(db_url, fake, pipeline={"lease_seconds": LEASE}) as (app, _):
        for conversation in conversations:
            status, _ = await deliver(app, fake.notification("conversation.user.created", conversation))
            assert status == 200
        await wait_until(lambda: settled(app), timeout=60, what="every reply sent")
        await wait_until(lambda: _answered_all(fake), what="no request still held back")
        assert [len(fake.replies(c)) for c in conversations] == [1] * len(conversations)
        entries = await app.store.outbox_entries()
        assert [e.status for e in entries] == [OutboxStatus.DONE] * len(conversations)
        assert all(e.attempts == 1 for e in entries), "a held lease is never taken over"


def _answered_all(fake: FakeIntercom) -> bool:
    """Every request the fake received has been answered (a stalled second post has landed)."""
    return all(request.status for request in fake.requests)


async def test_a_send_cut_off_after_it_landed_is_found_not_repeated(
    db_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    conversation = fake.start_conversation(fake.add_contact(), "<p>where is my order?</p>")
    # The reply takes effect, but its answer never comes back before the sender is gone.
    fake.fail("POST", REPLY_PATH, status=200, delay=LEASE * 3)
    pipeline = {"lease_seconds": LEASE, "drain_timeout_seconds": 0}
    async with running_app(db_url, fake, pipeline=pipeline) as (app, _):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply to land")
    # The next sender takes the action once the lease has run out, and looks before it posts.
    async with running_app(db_url, fake, pipeline=pipeline) as (app, _):
        await wait_until(lambda: settled(app), timeout=60, what="the action to be finished")
        (reply,) = fake.replies(conversation)
        (entry,) = await app.store.outbox_entries()
        assert entry.status is OutboxStatus.DONE and entry.remote_id == reply["id"]
        assert entry.attempts == 2
        assert len(fake.calls("POST", REPLY_PATH)) == 1
    await wait_until(lambda: _answered_all(fake), what="the cut-off answer to be given up")


async def test_rate_limits_and_errors_past_the_lease_still_give_one_reply(
    db_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    conversations = [
        fake.start_conversation(fake.add_contact(), f"<p>question {i}</p>") for i in range(4)
    ]
    # Replies are refused with 429 (Retry-After 1 s) and then 503 (outcome unknown: the next
    # try looks before it posts), and the ones that get through are slow: each send takes
    # several leases, in retries and their waits.
    fake.fail("POST", REPLY_PATH, status=429, times=2 * len(conversations), retry_after=1)
    fake.fail("POST", REPLY_PATH, status=503, times=len(conversations), retry_after=None)
    fake.stall("POST", REPLY_PATH, seconds=LEASE * 1.2, times=100)
    async with running_app(db_url, fake, pipeline={"lease_seconds": LEASE}) as (app, _):
        for conversation in conversations:
            status, _ = await deliver(app, fake.notification("conversation.user.created", conversation))
            assert status == 200
        await wait_until(lambda: settled(app), timeout=90, what="every reply sent")
        await wait_until(lambda: _answered_all(fake), what="no request still held back")
        assert [len(fake.replies(c)) for c in conversations] == [1] * len(conversations)
        assert len(fake.calls("POST", REPLY_PATH)) > 3 * len(conversations)
        entries = await app.store.outbox_entries()
        assert [e.status for e in entries] == [OutboxStatus.DONE] * len(conversations)


async def test_a_delivery_with_two_customer_messages_gets_one_turn_under_load(
    db_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    conversations = []
    for i in range(120):
        conversation = fake.start_conversation(fake.add_contact(), f"<p>opening {i}</p>")
        fake.other_bot_part(conversation, "<p>Pick a topic</p>")
        fake.user_reply(conversation, f"<p>follow-up {i}</p>")
        conversations.append(conversation)
    # Each conversation arrives whole in one "created" notification; every fifth twice.
    deliveries = [_created_whole(fake, c) for c in conversations]
    deliveries += deliveries[::5]
    async with running_app(db_url, fake) as (app, runner):
        statuses = await asyncio.gather(*(deliver(app, d) for d in deliveries))
        assert [status for status, _ in statuses] == [200] * len(deliveries)
        await wait_until(lambda: settled(app), timeout=120, what="every conversation answered")
        assert [len(fake.replies(c)) for c in conversations] == [1] * len(conversations)
        assert len(runner.seen) == len(conversations)
        for turn in runner.seen:
            i = turn.user_text.split()[-1]
            assert turn.user_text == f"opening {i}\n\nfollow-up {i}"


def _created_whole(fake: FakeIntercom, conversation: str) -> dict[str, Any]:
    """A ``conversation.user.created`` notification carrying every part so far (as when a
    workflow bot hands a conversation over)."""
    payload = fake.notification("conversation.user.created", conversation)
    payload["data"]["item"] = fake.conversation_json(conversation)
    return payload
