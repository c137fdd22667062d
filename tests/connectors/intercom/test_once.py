"""Answered once, whatever the timing: a send slower than its lease, a delivery that carries
two of the customer's messages, and both under load with redeliveries."""

from __future__ import annotations

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
