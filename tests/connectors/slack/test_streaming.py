"""Live replies: the answer streams into the Slack thread while the turn runs, and the REPLY
action that the turn commits completes that very message, so the customer sees one answer
whatever happens (words said before a tool call, a turn without a reply, a failed turn, a
worker that died mid-stream, a Slack that refuses to stream or rate-limits the appends)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.connector import LiveReply
from bot.domain import Action, ActionKind, InboxStatus, now
from connectors.slack import SlackConnector
from connectors.slack.mrkdwn import markdown_reply
from tests.connectors.slack.conftest import (
    AGENT,
    CUSTOMER,
    MARKDOWN_ANSWER,
    ROOT,
    SUPPORT,
    Daemon,
    Make,
    deliver,
    settled,
    slack_thread,
)
from tests.fakes.slack import BOT_USER, FakeSlack, event_callback, message, wait_until

LIVE = {"stream": True, "stream_interval_seconds": 0.02}


def _bot_messages(slack: FakeSlack, channel: str, root: str) -> list[dict[str, Any]]:
    return [m for m in slack.thread(channel, root) if m.get("user") == BOT_USER]


async def test_the_answer_streams_while_the_turn_runs_and_ends_as_one_message(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon(**LIVE) as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "hold on, what's my plan?", ts,
                                                  channel_type="im")))
        expected = "**Echo:** hold on, what's my plan?"
        # The turn is still running (held): nothing is committed, yet the words are in Slack.
        [live] = await wait_until(lambda: [m for m in slack.thread("D0DM", ts)
                                           if m.get("streaming") and m["text"] == expected])
        assert await app.store.outbox_entries() == []
        assert "metadata" not in live
        assert len(slack.calls_to("chat.appendStream")) >= 1  # it came in pieces
        start = slack.calls_to("chat.startStream")[0]
        assert start["thread_ts"] == ts and start["recipient_user_id"] == CUSTOMER

        app.runner.gate.set()  # type: ignore[union-attr]
        await wait_until(lambda: settled(app))
        [reply] = slack.thread("D0DM", ts)
        assert reply["ts"] == live["ts"] and reply["streaming"] is False
        assert reply["text"] == expected
        [entry] = await app.store.outbox_entries()
        assert entry.action.ref["stream_ts"] == live["ts"]
        assert reply["metadata"]["event_payload"] == {"action_id": entry.action.id, "part": 0}
        assert entry.remote_id == live["ts"]
        assert not slack.calls_to("chat.postMessage") and not slack.calls_to("chat.update")
        await wait_until(lambda: ("D0DM", ts, "eyes") not in slack.reactions)


async def test_words_said_before_a_tool_call_give_way_to_the_answer(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon(**LIVE) as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "chatter", ts, channel_type="im")))
        await wait_until(lambda: settled(app))
        [reply] = slack.thread("D0DM", ts)
        assert reply["text"] == "**Echo:** chatter" and reply["edited"]
        [entry] = await app.store.outbox_entries()
        assert reply["metadata"]["event_payload"]["action_id"] == entry.action.id
        assert not slack.calls_to("chat.postMessage")


async def test_a_turn_that_ends_without_a_reply_takes_its_words_down(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon(**LIVE) as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "silent", ts, channel_type="im")))
        await wait_until(lambda: slack.deleted)
        await wait_until(lambda: settled(app))
        assert slack.thread("D0DM", ts) == []
        assert slack.deleted[0]["text"] == "Hmm, one moment"
        await wait_until(lambda: ("D0DM", ts, "eyes") not in slack.reactions)


async def test_a_turn_that_fails_for_good_takes_its_words_and_working_indicator_down(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon(pipeline={"turn_max_attempts": 1}, **LIVE) as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "explode", ts, channel_type="im")))
        await wait_until(lambda: ("D0DM", ts, "eyes") in slack.reactions)
        await wait_until(lambda: ("D0DM", ts, "eyes") not in slack.reactions)
        assert (await app.store.inbox_counts()).get(InboxStatus.FAILED.value) == 1
        assert slack.thread("D0DM", ts) == []
        [deleted] = slack.deleted  # what had streamed of "Let me see" when the turn failed
        assert deleted["text"].startswith("Let")


async def test_a_turn_that_will_be_retried_keeps_the_working_indicator(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon(pipeline={"turn_max_attempts": 3}) as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "explode", ts, channel_type="im")))

        async def waiting_for_a_retry() -> bool:
            [item] = await app.store.inbox_items()
            return bool(item["attempts"] == 1 and item["status"] == InboxStatus.PENDING.value)

        await wait_until(waiting_for_a_retry)
        assert ("D0DM", ts, "eyes") in slack.reactions
        assert not slack.calls_to("reactions.remove", ok_only=False)


async def test_a_skipped_turn_takes_the_working_indicator_off(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon() as app:
        root = slack.next_ts()
        await deliver(app, event_callback(message(SUPPORT, CUSTOMER, "hold: my export fails", root)))
        await wait_until(lambda: app.runner.turns)  # type: ignore[union-attr]
        # While the bot works on the first message, the customer adds one and a person steps in.
        follow_up = slack.next_ts()
        await deliver(app, event_callback(message(SUPPORT, CUSTOMER, "it says error 42", follow_up,
                                                  thread_ts=root, parent_user=CUSTOMER)))
        await wait_until(lambda: (SUPPORT, follow_up, "eyes") in slack.reactions)
        await deliver(app, event_callback(message(SUPPORT, AGENT, "I'll take this one", slack.next_ts(),
                                                  thread_ts=root, parent_user=CUSTOMER)))
        app.runner.gate.set()  # type: ignore[union-attr]
        await wait_until(lambda: settled(app))
        assert (await app.store.inbox_counts()).get(InboxStatus.SKIPPED.value) == 1
        assert len(app.runner.turns) == 1  # type: ignore[union-attr]
        await wait_until(lambda: (SUPPORT, follow_up, "eyes") not in slack.reactions)


async def test_when_slack_will_not_stream_the_answer_is_posted_whole(
    daemon: Daemon, slack: FakeSlack
) -> None:
    slack.fail("chat.startStream", status=200, error="missing_scope", retry_after=None)
    async with daemon(**LIVE) as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "hello", ts, channel_type="im")))
        await wait_until(lambda: settled(app))
        [reply] = slack.thread("D0DM", ts)
        assert reply["text"] == "**Echo:** hello" and "streaming" not in reply
        assert len(slack.calls_to("chat.postMessage")) == 1


async def test_appends_that_fail_midway_still_end_in_one_complete_message(
    daemon: Daemon, slack: FakeSlack
) -> None:
    slack.fail("chat.appendStream", status=200, error="internal_error", retry_after=None)
    async with daemon(**LIVE) as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "hold the line please", ts,
                                                  channel_type="im")))
        await wait_until(lambda: slack.calls_to("chat.appendStream", ok_only=False))
        app.runner.gate.set()  # type: ignore[union-attr]
        await wait_until(lambda: settled(app))
        [reply] = slack.thread("D0DM", ts)
        assert reply["text"] == "**Echo:** hold the line please" and reply["streaming"] is False
        assert reply["metadata"]["event_type"] == "supportbot_action"
        assert not slack.calls_to("chat.postMessage")


# -- the connector on its own: another worker, a lost response, a dead worker's leftovers --------


def _reply(ref: dict[str, Any], text: str, *, attempt: int = 0) -> Action:
    thread = slack_thread()
    return Action(id="act_live", run_id="run_1", thread_id=thread.id, channel="slack",
                  kind=ActionKind.REPLY, text=text, ref={**thread.metadata, **ref}, attempt=attempt)


async def _stream(live: LiveReply, text: str) -> dict[str, Any]:
    for word in text.split(" "):
        live.append(word + " ")
    return await live.finish()


async def test_another_worker_completes_the_live_message_once(make_connector: Make, slack: FakeSlack) -> None:
    streaming: SlackConnector = await make_connector(**LIVE)
    sending: SlackConnector = await make_connector(**LIVE)
    live = await streaming.live_reply(slack_thread(), "run_1", retry=False)
    assert live is not None
    ref = await _stream(live, "Your plan is Pro.")
    assert set(ref) == {"stream_ts", "stream_shown", "stream_chars", "stream_trailing"}

    remote = await sending.execute(_reply(ref, "Your plan is Pro."), slack_thread())
    assert remote == ref["stream_ts"]
    [message_] = slack.thread(SUPPORT, ROOT)
    assert message_["text"].strip() == "Your plan is Pro." and message_["streaming"] is False
    assert message_["metadata"]["event_payload"] == {"action_id": "act_live", "part": 0}

    # The response to that was lost: the retry finds the message by its metadata, sends nothing.
    stops = len(slack.calls_to("chat.stopStream", ok_only=False))
    again = await sending.execute(_reply(ref, "Your plan is Pro.", attempt=1), slack_thread())
    assert again == ref["stream_ts"]
    assert len(slack.calls_to("chat.stopStream", ok_only=False)) == stops
    assert not slack.calls_to("chat.postMessage") and not slack.calls_to("chat.update")
    assert len(slack.thread(SUPPORT, ROOT)) == 1


async def test_a_stopped_but_unmarked_live_message_gets_the_reply_text(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector: SlackConnector = await make_connector(**LIVE)
    live = await connector.live_reply(slack_thread(), "run_1", retry=False)
    assert live is not None
    ref = await _stream(live, "Checking")
    slack._find(SUPPORT, ref["stream_ts"])["streaming"] = False  # type: ignore[index]  # Slack timed it out
    await connector.execute(_reply(ref, "Checking done: all good", attempt=1), slack_thread())
    [message_] = slack.thread(SUPPORT, ROOT)
    assert message_["text"] == "Checking done: all good"
    assert message_["metadata"]["event_payload"]["action_id"] == "act_live"


async def test_a_retried_turn_first_deletes_what_a_dead_worker_left_streaming(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector: SlackConnector = await make_connector(**LIVE)
    slack.messages[SUPPORT] = [{"type": "message", "user": CUSTOMER, "ts": ROOT, "text": "help"}]
    answered = slack._post(SUPPORT, {"text": "earlier answer", "thread_ts": ROOT, "metadata": {
        "event_type": "supportbot_action", "event_payload": {"action_id": "act_0", "part": 0}}})
    slack._post(SUPPORT, {"text": "half an ans", "thread_ts": ROOT, "streaming": True})
    slack._post(SUPPORT, {"text": "a colleague's note", "thread_ts": ROOT, "user": AGENT})

    live = await connector.live_reply(slack_thread(), "run_2", retry=True)
    assert live is not None
    assert [m["text"] for m in slack.deleted] == ["half an ans"]
    assert [m["text"] for m in slack.thread(SUPPORT, ROOT)] == ["earlier answer", "a colleague's note"]
    assert answered in slack.messages[SUPPORT]
    await live.discard()


async def test_a_reply_whose_live_message_is_gone_is_posted_afresh(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector: SlackConnector = await make_connector(**LIVE)
    gone = {"stream_ts": f"{now():.6f}", "stream_shown": "0" * 16, "stream_chars": 3}
    await connector.execute(_reply(gone, "the answer"), slack_thread())
    [message_] = slack.thread(SUPPORT, ROOT)
    assert message_["text"] == "the answer"
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_a_streamed_and_a_posted_reply_reach_slack_in_the_same_form(
    daemon: Daemon, slack: FakeSlack
) -> None:
    """One rendering path: the same Markdown answer, posted whole or streamed live, ends as the
    same ``markdown_text`` in Slack — Markdown kept for Slack to render, mentions broken."""
    final: dict[bool, dict[str, Any]] = {}
    for live in (False, True):
        async with daemon(**(LIVE if live else {})) as app:
            ts = slack.next_ts()
            await deliver(app, event_callback(message("D0DM", CUSTOMER, "the markdown please", ts,
                                                      channel_type="im")))
            await wait_until(lambda: settled(app))
            [final[live]] = slack.thread("D0DM", ts)
    posted, streamed = final[False], final[True]
    assert slack.calls_to("chat.startStream") and slack.calls_to("chat.postMessage")
    assert streamed["streaming"] is False and "streaming" not in posted
    assert posted["format"] == streamed["format"] == "markdown"
    assert posted["text"] == streamed["text"] == markdown_reply(MARKDOWN_ANSWER)
    assert "**Fixed**" in posted["text"] and "[guide](https://acme.example/export)" in posted["text"]
    assert "<!channel>" not in posted["text"] and "<@U0BOSS>" not in posted["text"]


async def test_slack_markup_cut_between_two_flushes_is_broken_all_the_same(
    make_connector: Make, slack: FakeSlack
) -> None:
    connector: SlackConnector = await make_connector(**LIVE)
    live = await connector.live_reply(slack_thread(), "run_1", retry=False)
    assert live is not None
    live.append("Heads up <")
    await wait_until(lambda: slack.calls_to("chat.startStream"))
    await asyncio.sleep(0.1)  # several flush intervals with the "<" last
    live.append("!channel> the API is back.")
    ref = await live.finish()
    text = "Heads up <!channel> the API is back."
    [shown] = slack.thread(SUPPORT, ROOT)
    assert shown["text"] == markdown_reply(text)
    # The reply completes that message as it is (what showed is what it would post).
    await connector.execute(_reply(ref, text), slack_thread())
    [message_] = slack.thread(SUPPORT, ROOT)
    assert message_["text"] == markdown_reply(text) and message_["streaming"] is False
    assert not slack.calls_to("chat.update") and not slack.calls_to("chat.postMessage")
