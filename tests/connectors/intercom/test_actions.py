"""Actions against the fake Intercom, one by one: resends after an unknown outcome, tags,
assignment, state, user info and the poller's search."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from bot.app import Application
from bot.connector import ActionError
from bot.domain import Action, ActionKind, Control, Smith, Thread, ThreadState, now
from connectors.intercom.connector import IntercomConnector
from tests.connectors.intercom.conftest import running_app
from tests.fakes.intercom import FakeIntercom


def _thread(conversation_id: str) -> Thread:
    return Thread(
        id="thr_test", smith_id="smt_test", agent_id="agt_test",
        external_id=f"intercom:{conversation_id}", channel="intercom",
        state=ThreadState.OPEN, control=Control.BOT, title=None, metadata={},
        created_at=now(), updated_at=now(),
    )


def _smith(contact_id: str) -> Smith:
    return Smith(
        id="smt_test", agent_id="agt_test", external_id=f"intercom:{contact_id}",
        display_name=None, customer_id=None, metadata={}, auto_memory=True, pinned_version=None,
        archived_at=None, created_at=now(), updated_at=now(),
    )


def _action(kind: ActionKind, *, attempt: int = 0, action_id: str = "act_1", **fields: object) -> Action:
    return Action(id=action_id, run_id="run_none", thread_id="thr_test", channel="intercom",
                  kind=kind, attempt=attempt, **fields)  # type: ignore[arg-type]


def _connector(app: Application) -> IntercomConnector:
    connector = app.connectors["intercom"]
    assert isinstance(connector, IntercomConnector)
    return connector


async def test_a_reply_whose_answer_was_lost_is_not_sent_twice(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    cid = fake.start_conversation(fake.add_contact(), "<p>Hi</p>")
    async with running_app(sqlite_url, fake, timeout_seconds=0.3) as (app, _runner):
        connector = _connector(app)
        # Intercom stores the reply but the answer never arrives in time.
        fake.fail("POST", r"/conversations/\d+/reply", status=200, delay=1.0)
        with pytest.raises(ActionError) as caught:
            await connector.execute(_action(ActionKind.REPLY, text="Hello there"), _thread(cid))
        assert caught.value.retryable
        assert len(fake.calls("POST", r"/conversations/\d+/reply")) == 1  # not retried blindly
        assert len(fake.replies(cid)) == 1
        part_id = await connector.execute(
            _action(ActionKind.REPLY, text="Hello there", attempt=1), _thread(cid)
        )
        assert part_id == fake.replies(cid)[0]["id"]
        assert len(fake.calls("POST", r"/conversations/\d+/reply")) == 1
        # A different action with the same text is a new message.
        await connector.execute(
            _action(ActionKind.REPLY, text="Hello there", attempt=1, action_id="act_2"), _thread(cid)
        )
        assert len(fake.replies(cid)) == 2


async def test_a_reply_refused_with_a_server_error_is_sent_on_the_next_attempt(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    cid = fake.start_conversation(fake.add_contact(), "<p>Hi</p>")
    async with running_app(sqlite_url, fake) as (app, _runner):
        connector = _connector(app)
        fake.fail("POST", r"/conversations/\d+/reply", status=500, retry_after=None)
        with pytest.raises(ActionError) as caught:
            await connector.execute(_action(ActionKind.NOTE, text="internal"), _thread(cid))
        assert caught.value.retryable
        assert fake.notes(cid) == []
        await connector.execute(_action(ActionKind.NOTE, text="internal", attempt=1), _thread(cid))
        assert [n["body"].startswith("<p>internal") for n in fake.notes(cid)] == [True]


async def test_tags_assignment_and_state(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    cid = fake.start_conversation(fake.add_contact(), "<p>Hi</p>")
    thread = _thread(cid)
    async with running_app(sqlite_url, fake) as (app, _runner):
        connector = _connector(app)
        assert await connector.execute(_action(ActionKind.TAG, tag="VIP"), thread) == "100"
        await connector.execute(_action(ActionKind.TAG, tag="billing"), thread)
        assert sorted(fake.tag_names(cid)) == ["billing", "vip"]
        await connector.execute(_action(ActionKind.UNTAG, tag="vip"), thread)
        await connector.execute(_action(ActionKind.UNTAG, tag="vip"), thread)  # already gone
        assert await connector.execute(_action(ActionKind.UNTAG, tag="never-made"), thread) is None
        assert fake.tag_names(cid) == ["billing"]
        assert len(fake.calls("GET", "/tags")) == 1

        await connector.execute(_action(ActionKind.ASSIGN, assignee=f"admin:{fake.human_admin_id}"), thread)
        assert str(fake.conversations[cid].admin_assignee_id) == fake.human_admin_id
        with pytest.raises(ActionError) as caught:
            await connector.execute(_action(ActionKind.ASSIGN, assignee="nobody"), thread)
        assert not caught.value.retryable

        await connector.execute(_action(ActionKind.SNOOZE, until=now() + 3600), thread)
        assert fake.conversations[cid].state == "snoozed"
        await connector.execute(_action(ActionKind.OPEN), thread)
        assert fake.conversations[cid].state == "open"
        await connector.execute(_action(ActionKind.CLOSE), thread)
        assert fake.conversations[cid].state == "closed"
        closes = len(fake.calls("POST", r"/conversations/\d+/parts"))
        await connector.execute(_action(ActionKind.CLOSE, attempt=1), thread)
        assert len(fake.calls("POST", r"/conversations/\d+/parts")) == closes  # already closed

        with pytest.raises(ActionError) as caught:
            await connector.execute(_action(ActionKind.REACT, emoji="thumbsup"), thread)
        assert not caught.value.retryable
        with pytest.raises(ActionError) as caught:
            await connector.execute(_action(ActionKind.REPLY, text="x"), _thread("404404"))
        assert not caught.value.retryable


async def test_in_dry_run_what_the_customer_would_see_becomes_a_note(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    cid = fake.start_conversation(fake.add_contact(), "<p>Hi</p>")
    thread = _thread(cid)
    async with running_app(sqlite_url, fake, dry_run=True) as (app, _runner):
        connector = _connector(app)
        await connector.execute(_action(ActionKind.REPLY, action_id="act_r", text="Hello"), thread)
        await connector.execute(
            _action(ActionKind.SNOOZE, action_id="act_s", until=now() + 3600), thread
        )
        await connector.execute(_action(ActionKind.CLOSE, action_id="act_c"), thread)
        assert fake.replies(cid) == []
        assert fake.conversations[cid].state == "open"
        notes = [note["body"] for note in fake.notes(cid)]
        expected = [
            "<p>[dry run] would reply: Hello",
            "<p>[dry run] would snooze this conversation",
            "<p>[dry run] would close this conversation",
        ]
        assert len(notes) == len(expected)
        assert all(body.startswith(start) for body, start in zip(notes, expected, strict=True))
        # The team's own actions are not customer-facing: they run as usual.
        await connector.execute(_action(ActionKind.TAG, tag="vip"), thread)
        await connector.execute(_action(ActionKind.NOTE, action_id="act_n", text="for the team"), thread)
        assert fake.tag_names(cid) == ["vip"]
        assert len(fake.notes(cid)) == 4
        with pytest.raises(ActionError) as caught:
            await connector.execute(_action(ActionKind.REACT, emoji="thumbsup"), thread)
        assert not caught.value.retryable


async def test_user_info_is_the_conversation_s_own_contact(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact("Ada Lovelace", "ada@example.com", plan="enterprise", company="Engines Ltd")
    stranger = fake.add_contact("Someone Else")
    cid = fake.start_conversation(contact, "<p>Hi</p>")
    async with running_app(sqlite_url, fake) as (app, _runner):
        connector = _connector(app)
        info = await connector.user_info(_smith(contact), _thread(cid))
        assert info["name"] == "Ada Lovelace"
        assert info["email"] == "ada@example.com"
        assert info["plan"] == "enterprise"
        assert info["companies"][0]["name"] == "Engines Ltd"
        assert info["companies"][0]["plan"] == "Enterprise"
        # Another smith asking about this conversation learns nothing.
        assert await connector.user_info(_smith(stranger), _thread(cid)) == {}
        # Nor does a smith that is no Intercom contact at all (and nothing is asked).
        asked = len(fake.requests)
        web = replace(_smith(contact), external_id=f"web:{contact}")
        assert await connector.user_info(web, _thread(cid)) == {}
        assert len(fake.requests) == asked


async def test_a_swept_conversation_is_not_fetched_again_to_look_its_customer_up(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact("Ada Lovelace", "ada@example.com")
    stranger = fake.add_contact("Someone Else")
    cid = fake.start_conversation(contact, "<p>Hi</p>")
    async with running_app(sqlite_url, fake) as (app, _runner):
        connector = _connector(app)
        assert [batch async for batch in connector.fetch_pending(since=None, limit=None)]
        fetches = len(fake.calls("GET", f"/conversations/{cid}"))
        assert fetches == 1
        assert (await connector.user_info(_smith(contact), _thread(cid)))["name"] == "Ada Lovelace"
        assert await connector.user_info(_smith(stranger), _thread(cid)) == {}
        assert len(fake.calls("GET", f"/conversations/{cid}")) == fetches


async def test_fetch_pending_pages_by_hand_and_skips_what_is_not_waiting(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    waiting = [fake.start_conversation(fake.add_contact(), f"<p>question {i}</p>") for i in range(5)]
    answered = fake.start_conversation(fake.add_contact(), "<p>answered</p>")
    fake.admin_reply(answered, "<p>done</p>", admin_id=fake.bot_admin_id)
    human = fake.start_conversation(fake.add_contact(), "<p>a human has it</p>")
    fake.assign(human, fake.human_admin_id)
    closed = fake.start_conversation(fake.add_contact(), "<p>closed</p>")
    fake.close_by_admin(closed)
    async with running_app(sqlite_url, fake, poll_page_size=2) as (app, _runner):
        connector = _connector(app)
        found = [batch async for batch in connector.fetch_pending(since=None, limit=None)]
        # One conversation per item, as its waiting messages.
        assert [{m.ref["conversation_id"] for m in batch} for batch in found] == [
            {cid} for cid in waiting
        ]
        searches = fake.calls("POST", "/conversations/search")
        assert len(searches) == 3
        assert [bool((s.body.get("pagination") or {}).get("starting_after")) for s in searches] == [
            False, True, True
        ]
        # Every page is read before the first conversation is fetched (and handed out to be
        # answered): answering takes a conversation out of the search, and paging after that
        # would skip as many.
        paths = [r.path for r in fake.requests]
        last_search = max(i for i, p in enumerate(paths) if p == "/conversations/search")
        assert not any(re.fullmatch(r"/conversations/\d+", p) for p in paths[:last_search])
        fetched = len(fake.calls("GET", r"/conversations/\w+"))
        limited = [batch async for batch in connector.fetch_pending(since=None, limit=2)]
        assert len(limited) == 2
        # No conversation is fetched for nothing.
        assert len(fake.calls("GET", r"/conversations/\w+")) - fetched == 2
        later = [batch async for batch in connector.fetch_pending(since=now() + 3600, limit=None)]
        assert later == []
