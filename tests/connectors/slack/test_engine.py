"""With the real engine (offline responder): escalation and close decided by the model's tools
come out as Slack actions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.app import Application
from bot.domain import Control, ThreadState
from bot.store.migrate import upgrade
from tests.conftest import make_settings
from tests.connectors.slack.conftest import (
    CUSTOMER,
    ESCALATION,
    ONCALL_GROUP,
    SUPPORT,
    deliver,
    settled,
)
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply, ScriptedToolCall
from tests.fakes.slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    event_callback,
    message,
    wait_until,
)


@pytest.fixture
async def engine_app(sqlite_url: str, slack: FakeSlack) -> AsyncIterator[Application]:
    section: dict[str, Any] = {
        "bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "base_url": slack.base_url,
        "support_channels": [SUPPORT], "escalation_channel": ESCALATION,
        "escalation_mention": ONCALL_GROUP, "post_interval_seconds": 0,
    }
    app = Application(make_settings(sqlite_url, slack=section, connectors=["slack"]))
    await upgrade(app.db.engine)
    async with app:
        yield app


async def test_the_offline_engine_escalates_through_slack(engine_app: Application, slack: FakeSlack) -> None:
    ts = slack.next_ts()
    await deliver(engine_app, event_callback(
        message(SUPPORT, CUSTOMER, "I want to talk to a real person please", ts)))
    posts = await wait_until(lambda: slack.messages.get(ESCALATION))
    await wait_until(lambda: settled(engine_app))
    assert f"<!subteam^{ONCALL_GROUP}>" in posts[0]["text"]
    assert "/archives/" in posts[0]["text"]
    assert (SUPPORT, ts, "sos") in slack.reactions
    assert slack.thread(SUPPORT, ts)
    [thread] = await engine_app.store.find_threads_by_external(f"slack:{TEAM}:{SUPPORT}:{ts}")
    assert thread.state is ThreadState.ESCALATED and thread.control is Control.HUMAN


async def test_the_offline_engine_answers_and_closes_through_slack(
    engine_app: Application, slack: FakeSlack
) -> None:
    ts = slack.next_ts()
    await deliver(engine_app, event_callback(
        message("D0DM", CUSTOMER, "How do I reset my password?", ts, channel_type="im")))
    await wait_until(lambda: slack.thread("D0DM", ts))
    await wait_until(lambda: settled(engine_app))
    await deliver(engine_app, event_callback(
        message("D0DM", CUSTOMER, "that worked, thanks", slack.next_ts(), channel_type="im",
                thread_ts=ts)))
    await wait_until(lambda: ("D0DM", ts, "white_check_mark") in slack.reactions)
    await wait_until(lambda: settled(engine_app))
    [thread] = await engine_app.store.find_threads_by_external(f"slack:{TEAM}:D0DM:{ts}")
    assert thread.state is ThreadState.CLOSED


async def test_a_remote_models_answer_streams_into_the_thread_as_it_is_written(
    db_url: str, slack: FakeSlack
) -> None:
    """The real engine and the OpenAI-compatible provider over HTTP: words said before a tool
    call show first, then the answer streams in while the model is still writing it, and the
    thread ends with one message holding exactly the answer."""
    answer = "You are on the Pro plan, Carla: exports are included."
    async with ScriptedModelServer() as server:
        server.enqueue(
            ScriptedReply.calls(ScriptedToolCall("USER_INFO_LOOKUP", {}, id="c1"),
                                text="Let me check your account. "),
            ScriptedReply.say(answer, chunk_size=4, delay_between_chunks=0.05),
        )
        section: dict[str, Any] = {
            "bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "base_url": slack.base_url,
            "post_interval_seconds": 0, "stream": True, "stream_interval_seconds": 0.05,
        }
        model = {"provider": "openai", "base_url": server.url, "api_key": "k", "name": "m",
                 "fallback": [], "timeout_seconds": 10, "stream": True}
        app = Application(make_settings(db_url, slack=section, model=model, connectors=["slack"]))
        await upgrade(app.db.engine)
        async with app:
            ts = slack.next_ts()
            await deliver(app, event_callback(
                message("D0DM", CUSTOMER, "Are exports in my plan?", ts, channel_type="im")))

            # Part of the answer is in Slack while the model is still writing the rest.
            partial = await wait_until(lambda: [
                m for m in slack.thread("D0DM", ts)
                if m.get("streaming") and m["text"].startswith("Let me check your account. You")
            ])
            assert partial[0]["text"] != "Let me check your account. " + answer
            assert await app.store.outbox_entries() == []

            await wait_until(lambda: settled(app))
            [reply] = slack.thread("D0DM", ts)
            assert reply["text"] == answer and reply["streaming"] is False
            [entry] = await app.store.outbox_entries()
            assert reply["metadata"]["event_payload"]["action_id"] == entry.action.id
            assert not slack.calls_to("chat.postMessage")
