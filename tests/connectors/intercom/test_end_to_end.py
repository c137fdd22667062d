"""End to end through the daemon's HTTP port: signed Intercom webhooks in, the fake Intercom
(validated against the official 2.14 spec) out."""

from __future__ import annotations

from pydantic import SecretStr

from bot.config import IntercomSettings
from bot.domain import Control, ThreadState
from connectors.intercom.connector import poll_interval
from tests.connectors.intercom.conftest import deliver, running_app, settled, wait_until
from tests.fakes.intercom import FakeIntercom


async def test_new_conversation_gets_one_reply(db_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    contact = fake.add_contact("Ada Lovelace", "ada@example.com")
    conversation = fake.start_conversation(contact, "<p>My invoice is wrong</p>")
    async with running_app(db_url, fake) as (app, _runner):
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


async def test_follow_up_sees_the_earlier_turn(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Hello, my export fails</p>")
    async with running_app(sqlite_url, fake) as (app, runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the first reply")
        fake.user_reply(conversation, "<p>It says <b>error 42</b></p>")
        await deliver(app, fake.notification("conversation.user.replied", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 2, what="the second reply")
        second = runner.seen[-1]
        assert second.user_text == "It says error 42"
        assert [run.output_text for run in second.history] == [
            "echo: Hello, my export fails (after 0 earlier turn(s))"
        ]
        assert "after 1 earlier turn(s)" in fake.replies(conversation)[1]["body"]


async def test_escalation_tags_notes_assigns_and_tells_the_customer(
    db_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Please escalate, I need a person</p>")
    assignee = f"admin:{fake.human_admin_id}"
    async with running_app(db_url, fake, escalation_assignee=assignee) as (app, _runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the customer message")
        await wait_until(lambda: settled(app), what="every action")
        assert sorted(fake.tag_names(conversation)) == ["escalated", "priority:high"]
        (note,) = fake.notes(conversation)
        assert "priority: high" in note["body"] and "customer asked for a person" in note["body"]
        assert "Please escalate" in note["body"]
        state = fake.conversations[conversation]
        assert str(state.admin_assignee_id) == fake.human_admin_id
        assert "a person will follow up" in fake.replies(conversation)[0]["body"]
        kinds = [p["part_type"] for p in fake.parts_by(conversation)]
        assert kinds == ["note", "assignment", "comment"]
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        assert thread.state is ThreadState.ESCALATED and thread.control is Control.HUMAN
        # Tags were looked up once and created once, then cached.
        assert len(fake.calls("GET", "/tags")) == 1
        assert len(fake.calls("POST", "/tags")) == 2


async def test_close_writes_a_note_then_closes(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Thanks, that solved it!</p>")
    async with running_app(sqlite_url, fake) as (app, _runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: fake.conversations[conversation].state == "closed", what="the close")
        await wait_until(lambda: settled(app), what="every action")
        kinds = [p["part_type"] for p in fake.parts_by(conversation)]
        assert kinds == ["note", "close"]
        assert "customer confirmed the fix" in fake.notes(conversation)[0]["body"]
        assert fake.replies(conversation) == []
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        assert thread.state is ThreadState.CLOSED


async def test_a_human_reply_silences_the_bot(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Where is my order?</p>")
    async with running_app(sqlite_url, fake) as (app, _runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the bot's reply")
        # The bot's own reply comes back as conversation.admin.replied: nothing changes.
        status, _ = await deliver(app, fake.notification("conversation.admin.replied", conversation))
        assert status == 200
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        assert thread.control is Control.BOT

        fake.admin_reply(conversation, "<p>Hi, Hannah here, let me check.</p>")
        status, _ = await deliver(app, fake.notification("conversation.admin.replied", conversation))
        assert status == 200
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        assert thread.control is Control.HUMAN

        fake.user_reply(conversation, "<p>Thanks Hannah, any news?</p>")
        await deliver(app, fake.notification("conversation.user.replied", conversation))
        await wait_until(lambda: settled(app), what="the inbox to settle")
        assert len(fake.replies(conversation)) == 1
        assert (await app.store.inbox_counts()).get("skipped") == 1


async def test_assignment_to_a_human_before_the_bot_saw_the_conversation(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Billing question</p>")
    fake.assign(conversation, fake.human_admin_id)
    async with running_app(sqlite_url, fake) as (app, runner):
        status, _ = await deliver(app, fake.notification("conversation.admin.assigned", conversation))
        assert status == 200
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: settled(app), what="the inbox to settle")
        assert fake.replies(conversation) == []
        assert runner.seen == []


async def test_the_same_notification_twice_gets_one_reply(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Hi</p>")
    notification = fake.notification("conversation.user.created", conversation)
    async with running_app(sqlite_url, fake) as (app, runner):
        assert (await deliver(app, notification))[0] == 200
        assert (await deliver(app, notification))[0] == 200
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        # Intercom's retry a minute later carries the same notification and part.
        fake.user_reply(conversation, "<p>Still there?</p>")
        replied = fake.notification("conversation.user.replied", conversation)
        retried = {**replied, "id": "notif_retry_with_new_id"}
        await deliver(app, replied)
        await deliver(app, retried)
        await wait_until(lambda: len(fake.replies(conversation)) == 2, what="the second reply")
        await wait_until(lambda: settled(app), what="a quiet pipeline")
        assert len(fake.replies(conversation)) == 2
        assert len(runner.seen) == 2
        assert (await app.store.inbox_counts()) == {"done": 2}


async def test_a_burst_of_429s_delivers_every_action_once(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Escalate this please</p>")
    assignee = f"team:{fake.team_id}"
    async with running_app(sqlite_url, fake, escalation_assignee=assignee) as (app, _runner):
        fake.fail("POST", r"/conversations/\d+/reply", status=429, times=3, retry_after=1)
        fake.fail("POST", r"/conversations/\d+/tags", status=429, times=1, retry_after=1)
        fake.fail("POST", r"/conversations/\d+/parts", status=429, times=1, retry_after=1)
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: settled(app), timeout=40, what="every action despite 429s")
        assert len(fake.replies(conversation)) == 1
        assert len(fake.notes(conversation)) == 1
        assert sorted(fake.tag_names(conversation)) == ["escalated", "priority:high"]
        assert fake.conversations[conversation].team_assignee_id == int(fake.team_id)
        assert len([r for r in fake.requests if r.status == 429]) == 5
        assert (await app.store.outbox_counts()) == {"done": 5}


async def test_a_bad_signature_is_refused_and_nothing_stored(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Hi</p>")
    notification = fake.notification("conversation.user.created", conversation)
    async with running_app(sqlite_url, fake) as (app, _runner):
        assert (await deliver(app, notification, secret="not-the-secret"))[0] == 401
        assert (await deliver(app, notification, secret=None))[0] == 401
        assert (await deliver(app, notification, signature="sha1=" + "0" * 40))[0] == 401
        assert (await deliver(app, notification, signature="garbage"))[0] == 401
        assert await app.store.inbox_counts() == {}
        assert await app.store.list_smiths() == []
        assert fake.replies(conversation) == []


async def test_poller_and_webhook_seeing_the_same_message_reply_once(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Can I change my plan?</p>")
    async with running_app(sqlite_url, fake) as (app, runner):
        connector = app.connectors["intercom"]
        assert await connector.poll_once() == 1  # type: ignore[attr-defined]
        await deliver(app, fake.notification("conversation.user.created", conversation))
        assert await connector.poll_once() == 0  # type: ignore[attr-defined]
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        await wait_until(lambda: settled(app), what="a quiet pipeline")
        # Answered: the poller finds nothing waiting any more.
        assert await connector.poll_once() == 0  # type: ignore[attr-defined]
        assert len(fake.replies(conversation)) == 1
        assert len(runner.seen) == 1
        assert await app.store.get_cursor("intercom.poller") is not None


async def test_the_poller_runs_by_itself_without_webhooks(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Anyone there?</p>")
    token = SecretStr("t")
    assert poll_interval(IntercomSettings(token=token)) == 60  # no webhooks: poll
    assert poll_interval(IntercomSettings(token=token, client_secret=token)) is None
    assert poll_interval(IntercomSettings(token=token, client_secret=token, poll_interval_seconds=5)) == 5
    assert poll_interval(IntercomSettings(token=token, poll_interval_seconds=0)) is None
    async with running_app(sqlite_url, fake, poll_interval_seconds=0.1) as (_app, runner):
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the polled reply")
        fake.user_reply(conversation, "<p>And another thing</p>")
        await wait_until(lambda: len(fake.replies(conversation)) == 2, what="the second polled reply")
        assert len(runner.seen) == 2


async def test_dry_run_turns_replies_into_notes(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>How do I reset my password?</p>")
    async with running_app(sqlite_url, fake, dry_run=True) as (app, _runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.notes(conversation)) == 1, what="the dry-run note")
        await wait_until(lambda: settled(app), what="a quiet pipeline")
        assert fake.replies(conversation) == []
        note = fake.notes(conversation)[0]["body"]
        assert note.startswith("<p>[dry run] would reply: echo: How do I reset my password?")
        fake.user_reply(conversation, "<p>ok that solved it</p>")
        await deliver(app, fake.notification("conversation.user.replied", conversation))
        await wait_until(lambda: settled(app) , what="the close turn")
        await wait_until(lambda: len(fake.notes(conversation)) == 3, what="the dry-run close")
        assert fake.conversations[conversation].state == "open"
        assert "[dry run] would close" in fake.notes(conversation)[-1]["body"]


async def test_a_customer_reopening_gives_the_thread_back_to_the_bot(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Question one</p>")
    async with running_app(sqlite_url, fake) as (app, _runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        fake.admin_reply(conversation, "<p>Human here</p>")
        await deliver(app, fake.notification("conversation.admin.replied", conversation))
        fake.close_by_admin(conversation)
        await deliver(app, fake.notification("conversation.admin.closed", conversation))
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        assert (thread.state, thread.control) == (ThreadState.CLOSED, Control.HUMAN)
        fake.user_reply(conversation, "<p>A new question, days later</p>")
        await deliver(app, fake.notification("conversation.user.replied", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 2, what="the bot's answer")
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        assert (thread.state, thread.control) == (ThreadState.OPEN, Control.BOT)


async def test_reopening_stays_human_without_resume_on_reopen(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Question one</p>")
    async with running_app(sqlite_url, fake, resume_on_reopen=False) as (app, _runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        fake.admin_reply(conversation, "<p>Human here</p>")
        await deliver(app, fake.notification("conversation.admin.replied", conversation))
        fake.close_by_admin(conversation)
        await deliver(app, fake.notification("conversation.admin.closed", conversation))
        fake.user_reply(conversation, "<p>A new question</p>")
        await deliver(app, fake.notification("conversation.user.replied", conversation))
        await wait_until(lambda: settled(app), what="the inbox to settle")
        assert len(fake.replies(conversation)) == 1
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        assert (thread.state, thread.control) == (ThreadState.OPEN, Control.HUMAN)


async def test_the_real_engine_answers_and_escalates_through_intercom(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    """The agent engine on the offline provider drives the same tools through this connector."""
    fake = fake_intercom
    contact = fake.add_contact("Ada Lovelace", "ada@example.com")
    question = fake.start_conversation(contact, "<p>How do I reset my password?</p>")
    person = fake.start_conversation(fake.add_contact(), "<p>I want to speak to a real person</p>")
    async with running_app(sqlite_url, fake, real_engine=True) as (app, _):
        await deliver(app, fake.notification("conversation.user.created", question))
        await deliver(app, fake.notification("conversation.user.created", person))
        await wait_until(lambda: settled(app), what="both turns and their actions")
        assert len(fake.replies(question)) == 1
        assert "escalated" in fake.tag_names(person)
        assert len(fake.notes(person)) == 1
        assert len(fake.replies(person)) == 1
        (thread,) = await app.store.find_threads_by_external(f"intercom:{person}")
        assert thread.control is Control.HUMAN


async def test_attachments_reach_the_turn(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Hi</p>")
    async with running_app(sqlite_url, fake, max_attachment_bytes=1_000_000) as (app, runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the first reply")
        fake.user_reply(
            conversation,
            "<p>Here is the error</p>",
            attachments=[
                {"type": "upload", "name": "error.png", "url": fake.file_url("error.png"),
                 "content_type": "image/png", "filesize": 1234, "width": 640, "height": 480},
                {"type": "upload", "name": "huge.log", "url": fake.file_url("huge.log"),
                 "content_type": "text/plain", "filesize": 5_000_000},
            ],
        )
        await deliver(app, fake.notification("conversation.user.replied", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 2, what="the second reply")
        (message,) = runner.seen[-1].messages
        assert [(a.name, a.content_type, a.size) for a in message.attachments] == [
            ("error.png", "image/png", 1234)
        ]
        assert message.attachments[0].url == fake.file_url("error.png")
        # Fetched when the turn started (the fake has no such file: named as not fetched);
        # the one over the cap never asked for.
        assert message.attachments[0].fetch_error == "HTTP 404"
        assert fake.file_downloads == [("error.png", None)]
        assert "too large: huge.log" in message.text


async def test_a_reply_whose_answer_times_out_is_found_not_resent(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    """Intercom stores the reply but its answer is lost: the outbox's next attempt finds the
    part by its marker instead of posting a second reply."""
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Is the API down?</p>")
    async with running_app(sqlite_url, fake, timeout_seconds=0.5) as (app, _runner):
        fake.fail("POST", r"/conversations/\d+/reply", status=200, delay=1.5)
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: settled(app), what="the reply to be settled")
        assert len(fake.replies(conversation)) == 1
        assert len(fake.calls("POST", rf"/conversations/{conversation}/reply")) == 1
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        (entry,) = await app.store.outbox_entries(thread_id=thread.id)
        assert entry.attempts >= 2 and entry.remote_id == fake.replies(conversation)[0]["id"]


async def test_assigning_the_conversation_to_the_bot_hands_it_back(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>First</p>")
    async with running_app(sqlite_url, fake) as (app, _runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        fake.assign(conversation, fake.human_admin_id)
        notification = fake.notification("conversation.admin.assigned", conversation)
        assert (await deliver(app, notification))[1]["reason"] == "stored"
        assert (await deliver(app, notification))[1]["reason"] == "notification already stored"
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        assert thread.control is Control.HUMAN
        fake.assign(conversation, fake.bot_admin_id)
        await deliver(app, fake.notification("conversation.admin.assigned", conversation))
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        assert thread.control is Control.BOT
        fake.user_reply(conversation, "<p>Second</p>")
        await deliver(app, fake.notification("conversation.user.replied", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 2, what="the bot's second reply")


async def test_an_unreachable_intercom_at_start_is_not_fatal(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    fake.fail("GET", "/me", status=500, times=10, retry_after=None)
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Hello?</p>")
    async with running_app(sqlite_url, fake, max_retries=1) as (app, _runner):
        assert (await app.ready())["connector:intercom"] is False
        fake.heal()
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply once /me answers")
        assert (await app.ready())["connector:intercom"] is True


async def test_a_conversation_rating_is_stored_with_the_bots_latest_answer(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    conversation = fake.start_conversation(fake.add_contact(), "<p>How do I reset it?</p>")
    async with running_app(sqlite_url, fake) as (app, _runner):
        await deliver(app, fake.notification("conversation.user.created", conversation))
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        await wait_until(lambda: settled(app), what="the turn")
        (thread,) = await app.store.find_threads_by_external(f"intercom:{conversation}")
        (run,) = await app.store.thread_runs(thread.id)

        fake.rate(conversation, 2, "did not help")
        await deliver(app, fake.notification("conversation.rating.added", conversation))
        given = await app.store.feedback.of_thread(thread.id)
        assert [(f.run_id, f.rating, f.comment, f.source) for f in given] == [
            (run.id, "down", "did not help", "rating")]
        # Rated again (5): the same customer's rating is replaced, not added; a 3 says neither.
        fake.rate(conversation, 5)
        await deliver(app, fake.notification("conversation.rating.added", conversation))
        assert [f.rating for f in await app.store.feedback.of_thread(thread.id)] == ["up"]
        fake.rate(conversation, 3)
        await deliver(app, fake.notification("conversation.rating.added", conversation))
        assert [f.rating for f in await app.store.feedback.of_thread(thread.id)] == ["up"]
