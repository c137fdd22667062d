"""Who holds a thread, decided once in ``bot.pipeline.handoff``: the same expectations on
Intercom, Slack and the web channel, each driven through its real inbound path (signed Intercom
webhooks against the fake Intercom, signed Slack events against the fake Slack, the web
conversations API). What a platform has no event for (an assignment on Slack; anything a person
does on the web channel, whose console is not built yet) is reported through
``runtime.report``, as a connector would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import aiohttp
import pytest
from sqlalchemy import update

from bot.app import Application
from bot.config import HandoffSettings, Settings
from bot.domain import (
    Control,
    Party,
    Signal,
    SignalKind,
    StopReason,
    Thread,
    ThreadState,
    now,
)
from bot.pipeline.handoff import Handoff
from bot.store.migrate import upgrade
from bot.store.schema import threads
from bot.store.store import ThreadChange
from tests.conftest import make_settings
from tests.connectors.intercom import conftest as intercom_kit
from tests.connectors.slack import conftest as slack_kit
from tests.fakes.intercom import FakeIntercom
from tests.fakes.slack import FakeSlack, event_callback, message
from tests.fakes.slack import wait_until as slack_wait_until
from tests.http import harness as web_kit

CHANNELS = ["intercom", "slack", "web"]
ESCALATE = "please escalate, I want a human"  # every channel's scripted runner escalates on it


class Channel(Protocol):
    """One conversation with one customer on one channel, and the people behind it."""

    app: Application

    async def customer_says(self, text: str) -> None:
        """The customer writes (opening the conversation the first time); returns once the
        message is handled and whatever the bot decided has been sent."""

    def bot_answers(self) -> int:
        """How many answers the customer has had from the bot."""

    async def person_replies(self) -> None: ...

    async def assign_to_person(self) -> None: ...

    async def assign_to_bot(self) -> None: ...

    async def close(self) -> None:
        """A person closes (or marks resolved) the conversation."""

    async def thread(self) -> Thread: ...


async def _report(app: Application, kind: SignalKind, channel: str, key: str) -> None:
    assert app.runtime is not None
    await app.runtime.report(Signal(kind, channel, key, who="a person"))


async def _settled(app: Application) -> None:
    """Wait until every message is handled and every action sent."""
    await slack_wait_until(lambda: slack_kit.settled(app))


async def _start(app: Application) -> Application:
    await upgrade(app.db.engine)  # the daemon migrates only SQLite by itself
    await app.start()
    return app


# -- Intercom ------------------------------------------------------------------------------------


class IntercomChannel:
    def __init__(self, app: Application, fake: FakeIntercom):
        self.app = app
        self.fake = fake
        self.contact = fake.add_contact("Ada Lovelace", "ada@example.com")
        self.conversation: str | None = None

    async def _deliver(self, topic: str) -> None:
        assert self.conversation is not None
        status, answer = await intercom_kit.deliver(
            self.app, self.fake.notification(topic, self.conversation)
        )
        assert status == 200, answer

    async def customer_says(self, text: str) -> None:
        if self.conversation is None:
            self.conversation = self.fake.start_conversation(self.contact, f"<p>{text}</p>")
            await self._deliver("conversation.user.created")
        else:
            self.fake.user_reply(self.conversation, f"<p>{text}</p>")
            await self._deliver("conversation.user.replied")
        await _settled(self.app)

    def bot_answers(self) -> int:
        return len(self.fake.replies(self.conversation)) if self.conversation else 0

    async def person_replies(self) -> None:
        assert self.conversation is not None
        self.fake.admin_reply(self.conversation, "<p>Hannah here, I'll take it from here.</p>")
        await self._deliver("conversation.admin.replied")

    async def assign_to_person(self) -> None:
        assert self.conversation is not None
        self.fake.assign(self.conversation, self.fake.human_admin_id)
        await self._deliver("conversation.admin.assigned")

    async def assign_to_bot(self) -> None:
        assert self.conversation is not None
        self.fake.assign(self.conversation, self.fake.bot_admin_id)
        await self._deliver("conversation.admin.assigned")

    async def close(self) -> None:
        assert self.conversation is not None
        self.fake.close_by_admin(self.conversation)
        await self._deliver("conversation.admin.closed")

    async def thread(self) -> Thread:
        [thread] = await self.app.store.find_threads_by_external(f"intercom:{self.conversation}")
        return thread


@asynccontextmanager
async def intercom_channel(db_url: str, handoff: dict[str, Any]) -> AsyncIterator[Channel]:
    fake = FakeIntercom()
    await fake.start()
    try:
        settings = make_settings(
            db_url, intercom=intercom_kit.intercom_section(fake), connectors=["intercom"],
            handoff=handoff,
        )

        async def runner(app: Application) -> intercom_kit.ScriptedRunner:
            return intercom_kit.ScriptedRunner(app)

        app = await _start(Application(settings, runner_factory=runner))
        try:
            yield IntercomChannel(app, fake)
        finally:
            await app.stop()
    finally:
        await fake.close()
    assert not fake.violations, fake.violations


# -- Slack ---------------------------------------------------------------------------------------


class SlackChannel:
    def __init__(self, app: Application, fake: FakeSlack):
        self.app = app
        self.fake = fake
        self.root: str | None = None

    @property
    def key(self) -> str:
        return f"slack:{slack_kit.TEAM}:{slack_kit.SUPPORT}:{self.root}"

    async def _deliver(self, event: dict[str, Any]) -> None:
        response = await slack_kit.deliver(self.app, event_callback(event))
        assert response.status == 200

    async def customer_says(self, text: str) -> None:
        ts = self.fake.next_ts()
        if self.root is None:
            self.root = ts
            await self._deliver(message(slack_kit.SUPPORT, slack_kit.CUSTOMER, text, ts))
        else:
            await self._deliver(message(slack_kit.SUPPORT, slack_kit.CUSTOMER, text, ts,
                                        thread_ts=self.root, parent_user=slack_kit.CUSTOMER))
        await _settled(self.app)

    def bot_answers(self) -> int:
        return len(self.fake.thread(slack_kit.SUPPORT, self.root)) if self.root else 0

    async def person_replies(self) -> None:
        assert self.root is not None
        await self._deliver(message(slack_kit.SUPPORT, slack_kit.AGENT, "I'll take this one",
                                    self.fake.next_ts(), thread_ts=self.root,
                                    parent_user=slack_kit.CUSTOMER))

    async def assign_to_person(self) -> None:
        await _report(self.app, SignalKind.ASSIGNED_TO_PERSON, "slack", self.key)

    async def assign_to_bot(self) -> None:
        await _report(self.app, SignalKind.ASSIGNED_TO_BOT, "slack", self.key)

    async def close(self) -> None:
        await self._deliver({
            "type": "reaction_added", "user": slack_kit.AGENT, "reaction": "white_check_mark",
            "item": {"type": "message", "channel": slack_kit.SUPPORT, "ts": self.root},
            "item_user": slack_kit.CUSTOMER, "event_ts": self.fake.next_ts(),
        })

    async def thread(self) -> Thread:
        [thread] = await self.app.store.find_threads_by_external(self.key)
        return thread


@asynccontextmanager
async def slack_channel(db_url: str, handoff: dict[str, Any]) -> AsyncIterator[Channel]:
    async with FakeSlack() as fake:
        fake.add_user(slack_kit.CUSTOMER, "Carla Customer", "carla@example.com", "CTO")
        fake.add_user(slack_kit.AGENT, "Sam Support", "sam@acme.example", "Support engineer")
        section = {
            "bot_token": slack_kit.BOT_TOKEN,
            "signing_secret": slack_kit.SIGNING_SECRET,
            "base_url": fake.base_url,
            "support_channels": [slack_kit.SUPPORT],
            "escalation_channel": slack_kit.ESCALATION,
            "post_interval_seconds": 0,
        }
        settings = make_settings(db_url, slack=section, connectors=["slack"], handoff=handoff)

        async def runner(app: Application) -> slack_kit.ScriptedRunner:
            return slack_kit.ScriptedRunner(app)

        app = await _start(Application(settings, runner_factory=runner))
        try:
            yield SlackChannel(app, fake)
        finally:
            await app.stop()


# -- web -----------------------------------------------------------------------------------------


class WebChannel:
    """A visitor in the browser; the people's side has no inbound path yet (the operator
    console is a later issue), so what they do is reported as the console will."""

    def __init__(self, app: Application, visitor: aiohttp.ClientSession):
        self.app = app
        self.visitor = visitor
        self.conversation: str | None = None
        self.answers = 0

    @property
    def key(self) -> str:
        return f"web:{self.conversation}"

    async def customer_says(self, text: str) -> None:
        if self.conversation is None:
            created = await web_kit.json_call(self.visitor, "POST", "/v1/conversations", json={})
            self.conversation = str(created["id"])
        answer = await web_kit.ask(self.visitor, self.conversation, text)
        assert answer["status"] in ("completed", "skipped"), answer
        if answer["status"] == "completed":
            self.answers += 1
        await _settled(self.app)

    def bot_answers(self) -> int:
        return self.answers

    async def person_replies(self) -> None:
        await _report(self.app, SignalKind.PERSON_REPLIED, "web", self.key)

    async def assign_to_person(self) -> None:
        await _report(self.app, SignalKind.ASSIGNED_TO_PERSON, "web", self.key)

    async def assign_to_bot(self) -> None:
        await _report(self.app, SignalKind.ASSIGNED_TO_BOT, "web", self.key)

    async def close(self) -> None:
        await _report(self.app, SignalKind.CLOSED, "web", self.key)

    async def thread(self) -> Thread:
        [thread] = await self.app.store.find_threads_by_external(self.key)
        return thread

    async def transcript(self) -> list[str]:
        items = await web_kit.json_call(
            self.visitor, "GET", f"/v1/conversations/{self.conversation}/items"
        )
        return [str(i["content"][0]["text"]) for i in items["data"] if i.get("role") == "user"]


@asynccontextmanager
async def web_channel(db_url: str, handoff: dict[str, Any]) -> AsyncIterator[Channel]:
    async with web_kit.running(db_url, handoff=handoff) as daemon, daemon.client() as visitor:
        await web_kit.session(visitor)
        yield WebChannel(daemon.app, visitor)


def open_channel(
    name: str, db_url: str, **handoff: Any
) -> AbstractAsyncContextManager[Channel]:
    return {"intercom": intercom_channel, "slack": slack_channel, "web": web_channel}[name](
        db_url, handoff
    )


# -- the same expectations on every channel ------------------------------------------------------


@pytest.mark.parametrize("name", CHANNELS)
async def test_a_person_replied_and_the_bot_is_silent_on_the_next_message(
    name: str, sqlite_url: str
) -> None:
    async with open_channel(name, sqlite_url) as channel:
        await channel.customer_says("My export fails")
        assert channel.bot_answers() == 1
        await channel.person_replies()
        assert (await channel.thread()).control is Control.HUMAN
        await channel.customer_says("Thanks, any news?")
        assert channel.bot_answers() == 1
        assert (await channel.thread()).control is Control.HUMAN


@pytest.mark.parametrize("name", CHANNELS)
async def test_assigned_back_to_the_bot_and_the_bot_answers_again(
    name: str, sqlite_url: str
) -> None:
    async with open_channel(name, sqlite_url) as channel:
        await channel.customer_says("Billing question")
        await channel.assign_to_person()
        await channel.customer_says("Hello?")
        assert channel.bot_answers() == 1
        await channel.assign_to_bot()
        assert (await channel.thread()).control is Control.BOT
        await channel.customer_says("Still there?")
        assert channel.bot_answers() == 2


@pytest.mark.parametrize("name", CHANNELS)
async def test_assigned_back_to_the_bot_stays_with_people_without_resume_on_assign(
    name: str, sqlite_url: str
) -> None:
    async with open_channel(name, sqlite_url, resume_on_assign=False) as channel:
        await channel.customer_says("Billing question")
        await channel.assign_to_person()
        await channel.assign_to_bot()
        assert (await channel.thread()).control is Control.HUMAN
        await channel.customer_says("Still there?")
        assert channel.bot_answers() == 1


@pytest.mark.parametrize("name", CHANNELS)
async def test_closed_by_a_person_then_reopened_by_the_customer_gives_it_back_to_the_bot(
    name: str, sqlite_url: str
) -> None:
    async with open_channel(name, sqlite_url) as channel:
        await channel.customer_says("Question one")
        await channel.person_replies()
        await channel.close()
        thread = await channel.thread()
        assert (thread.state, thread.control) == (ThreadState.CLOSED, Control.HUMAN)
        await channel.customer_says("A new question, days later")
        assert channel.bot_answers() == 2
        thread = await channel.thread()
        assert (thread.state, thread.control) == (ThreadState.OPEN, Control.BOT)


@pytest.mark.parametrize("name", CHANNELS)
async def test_reopened_by_the_customer_stays_with_people_without_resume_on_reopen(
    name: str, sqlite_url: str
) -> None:
    async with open_channel(name, sqlite_url, resume_on_reopen=False) as channel:
        await channel.customer_says("Question one")
        await channel.person_replies()
        await channel.close()
        await channel.customer_says("A new question")
        assert channel.bot_answers() == 1
        if name != "slack":
            # Slack shows a thread people hold to them and stores nothing; elsewhere the
            # customer's message reopens the conversation for the people who hold it.
            thread = await channel.thread()
            assert (thread.state, thread.control) == (ThreadState.OPEN, Control.HUMAN)


@pytest.mark.parametrize("name", CHANNELS)
async def test_escalate_leaves_the_thread_held_by_a_person(name: str, sqlite_url: str) -> None:
    async with open_channel(name, sqlite_url) as channel:
        await channel.customer_says(ESCALATE)
        told = channel.bot_answers()
        assert told == 1  # "a person will follow up"
        thread = await channel.thread()
        assert (thread.state, thread.control) == (ThreadState.ESCALATED, Control.HUMAN)
        await channel.customer_says("Hello? Anyone?")
        assert channel.bot_answers() == told
        if isinstance(channel, WebChannel):
            # The visitor's message is kept and shown, for the person who holds the thread.
            assert (await channel.transcript())[-1] == "Hello? Anyone?"


@pytest.mark.parametrize("name", CHANNELS)
async def test_the_bot_answers_again_once_people_went_quiet_for_resume_after_hours(
    name: str, sqlite_url: str
) -> None:
    async with open_channel(name, sqlite_url, resume_after_hours=2) as channel:
        await channel.customer_says("My export fails")
        await channel.person_replies()
        await channel.customer_says("Thanks")
        assert channel.bot_answers() == 1
        # Nobody on the support side has touched the thread for three hours.
        thread = await channel.thread()
        statement = update(threads).where(threads.c.id == thread.id).values(
            updated_at=now() - 3 * 3600
        )
        await channel.app.db.run_tx(lambda conn: conn.execute(statement))
        await channel.customer_says("Is anyone there?")
        assert channel.bot_answers() == 2
        assert (await channel.thread()).control is Control.BOT


# -- the policy on its own -----------------------------------------------------------------------


def _thread(state: ThreadState, control: Control, updated_at: float = 0.0) -> Thread:
    return Thread(
        id="thr_1", smith_id="smt_1", agent_id="agt_1", external_id="web:1", channel="web",
        state=state, control=control, title=None, metadata={}, created_at=0.0,
        updated_at=updated_at,
    )


def _handoff(**settings: Any) -> Handoff:
    return Handoff(None, HandoffSettings(**settings), default_agent="support")  # type: ignore[arg-type]


def test_the_bots_own_escalate_and_close_decide_the_thread_whatever_the_turn_said() -> None:
    handoff = _handoff()
    assert handoff.turn_change(StopReason.ESCALATED, ThreadChange(title="Refund")) == ThreadChange(
        ThreadState.ESCALATED, Control.HUMAN, "Refund"
    )
    assert handoff.turn_change(StopReason.CLOSED, ThreadChange()).state is ThreadState.CLOSED
    assert handoff.turn_change(StopReason.END_TURN, ThreadChange()) == ThreadChange()


def test_whether_the_bot_holds_a_thread() -> None:
    handoff = _handoff(resume_after_hours=1)
    assert handoff.bot_holds(_thread(ThreadState.OPEN, Control.BOT))
    assert not handoff.bot_holds(_thread(ThreadState.ESCALATED, Control.HUMAN, 1000.0), at=1000.0 + 3599)
    assert handoff.bot_holds(_thread(ThreadState.ESCALATED, Control.HUMAN, 1000.0), at=1000.0 + 3600)
    assert handoff.bot_holds(_thread(ThreadState.CLOSED, Control.HUMAN, 1000.0), at=1000.0)
    assert not _handoff(resume_on_reopen=False).bot_holds(_thread(ThreadState.CLOSED, Control.HUMAN))


def test_intercom_resume_on_reopen_is_still_honoured_as_an_alias() -> None:
    old = Settings.model_validate({"intercom": {"resume_on_reopen": False}})
    assert old.handoff.resume_on_reopen is False
    both = Settings.model_validate(
        {"intercom": {"resume_on_reopen": False}, "handoff": {"resume_on_reopen": True}}
    )
    assert both.handoff.resume_on_reopen is True
    assert Settings().handoff == HandoffSettings()


async def test_a_person_taking_a_conversation_the_bot_never_saw_creates_the_held_thread(
    db_url: str,
) -> None:
    async with open_channel("web", db_url) as channel:
        assert channel.app.runtime is not None
        await channel.app.runtime.report(Signal(
            SignalKind.ASSIGNED_TO_PERSON, "web", "web:elsewhere", by=Party.PERSON, who="admin:7",
            smith_external_id="web:customer-7", agent_slug="support", ref={"origin": "crm"},
        ))
        [thread] = await channel.app.store.find_threads_by_external("web:elsewhere")
        assert (thread.control, thread.metadata) == (Control.HUMAN, {"origin": "crm"})
