"""A live reply whose answer starts over (a fallback model after one that failed mid-answer):
the message that showed the abandoned words is taken down and the thread ends with one message
holding exactly the fallback's answer — never two answers run together."""

from __future__ import annotations

from typing import Any

from bot.app import Application
from bot.store.migrate import upgrade
from tests.conftest import make_settings
from tests.connectors.slack.conftest import (
    CUSTOMER,
    ROOT,
    SUPPORT,
    Make,
    deliver,
    settled,
    slack_thread,
)
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply
from tests.fakes.slack import (
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    FakeSlack,
    event_callback,
    message,
    wait_until,
)

LIVE = {"stream": True, "stream_interval_seconds": 0.02}
HALF_ANSWER = "To reset your password, you need to log into your Apple ID account first and "


async def test_a_reset_takes_the_shown_words_down_and_streams_afresh(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector = await make_connector(**LIVE)
    live = await connector.live_reply(slack_thread(), "run_1", retry=False)
    assert live is not None
    live.append("Half an ans")
    await wait_until(lambda: [m for m in slack.thread(SUPPORT, ROOT) if m["text"] == "Half an ans"])
    live.reset()
    live.append("The whole ")
    live.append("answer.")
    ref = await live.finish()
    [shown] = slack.thread(SUPPORT, ROOT)
    assert shown["text"] == "The whole answer." and shown["ts"] == ref["stream_ts"]
    assert [m["text"] for m in slack.deleted] == ["Half an ans"]


async def test_a_reset_before_anything_showed_costs_no_call(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector = await make_connector(**{**LIVE, "stream_interval_seconds": 5})
    live = await connector.live_reply(slack_thread(), "run_1", retry=False)
    assert live is not None
    live.reset()
    live.append("Only this.")
    await live.finish()
    assert [m["text"] for m in slack.thread(SUPPORT, ROOT)] == ["Only this."]
    assert not slack.deleted and not slack.calls_to("chat.delete", ok_only=False)


async def test_a_model_that_fails_mid_answer_leaves_only_the_fallbacks_answer_in_slack(
    db_url: str, slack: FakeSlack
) -> None:
    async with ScriptedModelServer() as server:
        # Slow enough that the first words reach Slack, then the connection drops.
        server.enqueue(ScriptedReply.say(HALF_ANSWER, chunk_size=10, cut_after=5,
                                         delay_between_chunks=0.3))
        section: dict[str, Any] = {
            "bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "base_url": slack.base_url,
            "post_interval_seconds": 0, **LIVE,
        }
        model = {"provider": "openai", "base_url": server.url, "api_key": "k", "name": "m",
                 "fallback": ["offline"], "max_retries": 0, "timeout_seconds": 10, "stream": True}
        app = Application(make_settings(db_url, slack=section, model=model, connectors=["slack"]))
        await upgrade(app.db.engine)
        async with app:
            ts = slack.next_ts()
            await deliver(app, event_callback(
                message("D0DM", CUSTOMER, "How do I reset my password?", ts, channel_type="im")))
            await wait_until(lambda: slack.deleted)
            await wait_until(lambda: settled(app))
            [entry] = [e for e in await app.store.outbox_entries() if e.action.kind.value == "reply"]
            run = await app.store.get_run(entry.action.run_id)

    # The abandoned words were in the thread, and were taken down.
    [withdrawn] = slack.deleted
    assert withdrawn["text"] and HALF_ANSWER.startswith(withdrawn["text"])
    [reply] = [m for m in slack.thread("D0DM", ts) if m.get("user") == BOT_USER]
    assert run.model.startswith("offline")
    assert reply["text"].strip() == run.output_text.strip()
    assert reply["streaming"] is False
    assert reply["metadata"]["event_payload"]["action_id"] == entry.action.id
    assert not slack.calls_to("chat.postMessage")
