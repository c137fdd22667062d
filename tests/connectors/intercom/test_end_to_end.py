"""End to end through the daemon's HTTP port: signed Intercom webhooks in, the fake Intercom
(validated against the official 2.14 spec) out."""

from __future__ import annotations

import pytest

from bot.domain import Control, ThreadState
from tests.connectors.intercom.conftest import deliver, running_app, settled, wait_until
from tests.fakes.intercom import FakeIntercom


async def test_new_conversation_gets_one_reply(db_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    contact = fake.add_contact("Ada Lovelace", "ada@example.com")
    conversation = fake.start_conversation(contact, "<p>My invoice is wrong</p>")
    async with running_app(db_url, fake) as (app, runner):
        status, _ = await deliver(app, fake.notification("conversation.user.created", conversation))
        assert status == 200
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        await wait_until(lambda: settled(app), what="a quiet pipeline")
        assert len(fake.replies(conversation)) == 1
        reply = fake.replies(conversation)[0]
        assert "echo: My invoice is wrong" in reply["body"]
        smiths = await app.store.list_smiths(external_id_prefix="intercom:")
        assert [s.external_id for s in smiths] == [f"intercom:{contact}"]
        assert smiths[0].display_name == "Ada Lovelace"
        assert smiths[0].metadata["email"] == "ada@example.com"
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        entries = await app.store.outbox_entries(thread_id=thread.id)
        assert entries[0].remote_id == reply["id"]


async def test_follow_up_sees_the_earlier_turn(db_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Hello, my export fails</p>")
    async with running_app(db_url, fake) as (app, runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the first reply")
        fake.user_reply(conversation, "<p>It says <b>error 42</b></p>")
        await deliver(app, fake.notification("conversation.user.replied", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 2, what="the second reply")
        second = runner.seen[-1]
        assert second.user_text == "It says error 42"
        assert [run.output_text for run in second.history] == [runner.seen[0] and
            "echo: Hello, my export fails (after 0 earlier turn(s))"]
        assert "after 1 earlier turn(s)" in fake.replies(conversation)[1]["body"]
