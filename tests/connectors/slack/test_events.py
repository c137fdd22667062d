"""End to end over HTTP: signed Slack events into ``supportbot``'s own port, Web API calls out
to the fake Slack, with a scripted turn runner deciding what the bot does."""

from __future__ import annotations

import base64
import json
import statistics
import time
from typing import Any

import aiohttp

from bot.agent.context import user_message
from bot.domain import Control, ThreadState
from tests.connectors.slack.conftest import (
    AGENT,
    CUSTOMER,
    ESCALATION,
    ONCALL_GROUP,
    SUPPORT,
    Daemon,
    deliver,
    inbound,
    runner_of,
    settled,
)
from tests.fakes.slack import (
    BOT_USER,
    TEAM,
    FakeSlack,
    event_callback,
    message,
    signed_headers,
    wait_until,
)


async def test_a_dm_gets_one_threaded_reply_with_the_working_indicator(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon() as app:
        ts = slack.next_ts()
        response = await deliver(app, event_callback(
            message("D0DM", CUSTOMER, "How do I reset my password?", ts, channel_type="im")))
        assert response.status == 200

        replies = await wait_until(lambda: slack.thread("D0DM", ts))
        await wait_until(lambda: settled(app))
        assert len(slack.thread("D0DM", ts)) == 1
        post = slack.calls_to("chat.postMessage")[0]
        assert post["thread_ts"] == ts
        assert replies[0]["text"] == "**Echo:** How do I reset my password?"
        entry = (await app.store.outbox_entries())[0]
        assert replies[0]["metadata"] == {
            "event_type": "supportbot_action",
            "event_payload": {"action_id": entry.action.id, "part": 0},
        }
        assert entry.remote_id == replies[0]["ts"]

        # :eyes: went on while the turn ran and came off with the answer.
        await wait_until(lambda: slack.calls_to("reactions.remove"))
        assert slack.calls_to("reactions.add")[0] == {"channel": "D0DM", "timestamp": ts, "name": "eyes"}
        assert ("D0DM", ts, "eyes") not in slack.reactions

        thread = await app.store.get_thread(entry.action.thread_id)
        assert thread.external_id == f"slack:{TEAM}:D0DM:{ts}"
        smith = await app.store.get_smith(thread.smith_id)
        assert smith.external_id == f"slack:{TEAM}:{CUSTOMER}"
        assert smith.display_name == "Carla Customer"
        assert smith.metadata["email"] == "carla@example.com"
        assert smith.metadata["title"] == "CTO"
        info = await app.connectors["slack"].user_info(smith, thread)
        assert info["real_name"] == "Carla Customer"
        assert len(slack.calls_to("users.info")) == 1  # cached


async def test_a_mention_arriving_as_app_mention_and_message_is_answered_once(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon() as app:
        ts = slack.next_ts()
        text = f"<@{BOT_USER}> is the API down?"
        for kind in ("app_mention", "message"):
            response = await deliver(app, event_callback(message(SUPPORT, CUSTOMER, text, ts, kind=kind)))
            assert response.status == 200
        await wait_until(lambda: slack.thread(SUPPORT, ts))
        await wait_until(lambda: settled(app))
        assert len(slack.thread(SUPPORT, ts)) == 1
        assert len(await inbound(app)()) == 1
        assert slack.thread(SUPPORT, ts)[0]["text"] == "**Echo:** is the API down?"


async def test_listening_rules(daemon: Daemon, slack: FakeSlack) -> None:
    async with daemon() as app:
        # In a mentions-only channel a plain message is not for the bot; a mention is.
        plain, mention = slack.next_ts(), slack.next_ts()
        await deliver(app, event_callback(message("CMENTIONS", CUSTOMER, "lunch?", plain)))
        await deliver(app, event_callback(
            message("CMENTIONS", CUSTOMER, f"<@{BOT_USER}> help", mention, kind="app_mention")))
        # Other bots, the bot itself, and channels that are not support channels are ignored.
        await deliver(app, event_callback(message(SUPPORT, "UOTHER", "beep", slack.next_ts(),
                                                  bot_id="BOTHER", subtype="bot_message")))
        await deliver(app, event_callback(message(SUPPORT, BOT_USER, "my own", slack.next_ts(),
                                                  bot_id="BBOT")))
        await deliver(app, event_callback(message("CRANDOM", CUSTOMER, "hello all", slack.next_ts())))
        await wait_until(lambda: slack.thread("CMENTIONS", mention))
        await wait_until(lambda: settled(app))
        messages = await inbound(app)()
        assert [m.ref["ts"] for m in messages] == [mention]
        assert messages[0].text == "help"
        assert slack.thread("CMENTIONS", plain) == []


async def test_bots_are_heard_where_the_channel_allows_them(daemon: Daemon, slack: FakeSlack) -> None:
    async with daemon(channels={"CBOTS": {"mode": "all", "allow_bots": True}}) as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("CBOTS", "UALERT", "disk full on db-1", ts,
                                                  bot_id="BALERT", subtype="bot_message")))
        await wait_until(lambda: slack.thread("CBOTS", ts))


async def test_a_retried_delivery_is_answered_once(daemon: Daemon, slack: FakeSlack) -> None:
    async with daemon() as app:
        ts = slack.next_ts()
        body = event_callback(message(SUPPORT, CUSTOMER, "Where is my invoice?", ts))
        assert (await deliver(app, body)).status == 200
        assert (await deliver(app, body, retry=1)).status == 200
        assert (await deliver(app, body, retry=2)).status == 200
        await wait_until(lambda: slack.thread(SUPPORT, ts))
        await wait_until(lambda: settled(app))
        assert len(slack.thread(SUPPORT, ts)) == 1
        assert len(await inbound(app)()) == 1


async def test_edits_and_unknown_events_get_a_2xx_and_nothing_else(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon() as app:
        ts = slack.next_ts()
        changed = {"type": "message", "subtype": "message_changed", "channel": SUPPORT,
                   "channel_type": "channel", "ts": slack.next_ts(), "hidden": True,
                   "message": {"type": "message", "user": CUSTOMER, "text": "edited", "ts": ts},
                   "previous_message": {"type": "message", "user": CUSTOMER, "text": "x", "ts": ts}}
        joined = message(SUPPORT, CUSTOMER, "<@UCUST> has joined", slack.next_ts(),
                         subtype="channel_join")
        created = {"type": "channel_created", "channel": {"id": "CNEW", "name": "new"}}
        before = len(slack.calls)
        for event in (changed, joined, created):
            response = await deliver(app, event_callback(event))
            assert response.status == 200
        assert await inbound(app)() == []
        assert [c.method for c in slack.calls[before:]] in ([], ["auth.test"])


async def test_url_verification_is_answered_and_a_bad_signature_gets_401(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon() as app:
        response = await deliver(app, {"token": "t", "challenge": "c-123", "type": "url_verification"})
        assert response.status == 200
        async with aiohttp.ClientSession() as session:
            body = json.dumps({"token": "t", "challenge": "c-123", "type": "url_verification"})
            from tests.fakes.slack import signed_headers

            async with session.post(f"http://127.0.0.1:{app.http_port}/slack/events", data=body,
                                    headers=signed_headers(body.encode())) as answered:
                assert (await answered.json())["challenge"] == "c-123"
        forged = await deliver(app, event_callback(message(SUPPORT, CUSTOMER, "hi", slack.next_ts())),
                               secret="not-the-secret")
        assert forged.status == 401
        assert await inbound(app)() == []


async def test_escalation_pings_the_on_call_group_with_a_permalink(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon() as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message(SUPPORT, CUSTOMER, "please escalate this", ts)))
        posts = await wait_until(lambda: slack.messages.get(ESCALATION))
        await wait_until(lambda: settled(app))
        text = posts[0]["text"]
        assert f"<!subteam^{ONCALL_GROUP}>" in text
        assert "high" in text and "the customer asked for a person" in text
        assert f"<@{CUSTOMER}>" in text
        assert f"https://acme.slack.com/archives/{SUPPORT}/p{ts.replace('.', '')}" in text
        assert (SUPPORT, ts, "sos") in slack.reactions
        [reply] = slack.thread(SUPPORT, ts)
        assert "a person will follow up" in reply["text"]
        [thread] = await app.store.find_threads_by_external(f"slack:{TEAM}:{SUPPORT}:{ts}")
        assert thread.state is ThreadState.ESCALATED and thread.control is Control.HUMAN

        # Humans have it now: the customer's next message in the thread gets no bot answer.
        await deliver(app, event_callback(message(SUPPORT, CUSTOMER, "hello?", slack.next_ts(),
                                                  thread_ts=ts)))
        assert len(slack.thread(SUPPORT, ts)) == 1


async def test_close_reacts_and_says_so(daemon: Daemon, slack: FakeSlack) -> None:
    async with daemon() as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "that solved it, thanks", ts,
                                                  channel_type="im")))
        await wait_until(lambda: ("D0DM", ts, "white_check_mark") in slack.reactions)
        await wait_until(lambda: settled(app))
        [reply] = slack.thread("D0DM", ts)
        assert "resolved: password reset" in reply["text"]
        [thread] = await app.store.find_threads_by_external(f"slack:{TEAM}:D0DM:{ts}")
        assert thread.state is ThreadState.CLOSED


async def test_a_human_reply_hands_the_thread_over(daemon: Daemon, slack: FakeSlack) -> None:
    async with daemon() as app:
        root = slack.next_ts()
        await deliver(app, event_callback(message(SUPPORT, CUSTOMER, "VPN drops every hour", root)))
        await wait_until(lambda: slack.thread(SUPPORT, root))
        # The customer follows up in the thread: the bot is part of it and answers.
        await deliver(app, event_callback(message(SUPPORT, CUSTOMER, "also on wifi", slack.next_ts(),
                                                  thread_ts=root)))
        await wait_until(lambda: len(slack.thread(SUPPORT, root)) == 2)
        await wait_until(lambda: settled(app))

        await deliver(app, event_callback(message(SUPPORT, AGENT, "I'll take this one", slack.next_ts(),
                                                  thread_ts=root)))
        [thread] = await app.store.find_threads_by_external(f"slack:{TEAM}:{SUPPORT}:{root}")
        assert thread.control is Control.HUMAN

        await deliver(app, event_callback(message(SUPPORT, CUSTOMER, "thanks Sam", slack.next_ts(),
                                                  thread_ts=root)))
        await wait_until(lambda: settled(app))
        assert len(slack.thread(SUPPORT, root)) == 2
        assert len(await inbound(app)()) == 2

        # A person marks the root resolved with :white_check_mark:.
        await deliver(app, event_callback({
            "type": "reaction_added", "user": AGENT, "reaction": "white_check_mark",
            "item": {"type": "message", "channel": SUPPORT, "ts": root},
            "item_user": CUSTOMER, "event_ts": slack.next_ts(),
        }))
        [thread] = await app.store.find_threads_by_external(f"slack:{TEAM}:{SUPPORT}:{root}")
        assert thread.state is ThreadState.CLOSED


async def test_a_429_with_retry_after_still_sends_the_reply_exactly_once(
    daemon: Daemon, slack: FakeSlack
) -> None:
    # Three 429s: two are absorbed by the client's retry handler, the third reaches the outbox,
    # which waits for Retry-After and tries again (looking for the earlier send first).
    slack.fail("chat.postMessage", status=429, retry_after=1, times=3)
    async with daemon() as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "hello", ts, channel_type="im")))
        await wait_until(lambda: slack.thread("D0DM", ts), timeout=30)
        await wait_until(lambda: settled(app), timeout=30)
        assert len(slack.thread("D0DM", ts)) == 1
        assert len(slack.calls_to("chat.postMessage", ok_only=False)) == 4
        assert slack.calls_to("conversations.replies")  # looked before sending again


async def test_long_answers_are_split_and_every_part_is_tagged(daemon: Daemon, slack: FakeSlack) -> None:
    async with daemon() as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "give me the long version", ts,
                                                  channel_type="im")))
        await wait_until(lambda: settled(app))
        parts = await wait_until(lambda: slack.thread("D0DM", ts))
        assert len(parts) >= 2
        assert all(len(p["text"]) <= 12_000 and p["format"] == "markdown" for p in parts)
        assert [p["metadata"]["event_payload"]["part"] for p in parts] == list(range(len(parts)))


async def test_shared_files_reach_the_turn_within_the_size_cap(daemon: Daemon, slack: FakeSlack) -> None:
    slack.files["shot.png"] = b"\x89PNG fake image"
    slack.files["dump.bin"] = b"x" * 4096
    async with daemon(max_file_bytes=1024) as app:
        ts = slack.next_ts()
        files = [
            {"id": "F1", "name": "shot.png", "mimetype": "image/png", "size": 15,
             "url_private": slack.file_url("shot.png")},
            {"id": "F2", "name": "dump.bin", "mimetype": "application/octet-stream", "size": 4096,
             "url_private": slack.file_url("dump.bin")},
        ]
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "", ts, channel_type="im",
                                                  subtype="file_share", files=files)))
        [turn] = await wait_until(lambda: runner_of(app).turns)
        [msg] = turn.messages
        shot, dump = msg.attachments
        assert shot.data == b"\x89PNG fake image" and shot.file_id == "F1"
        assert shot.fetch_error is None
        # Over the cap by the size Slack announced: named only, never downloaded.
        assert dump.data is None and dump.fetch_error is None and dump.size == 4096
        assert slack.file_downloads == ["shot.png"]
        assert "shot.png" in msg.text
        assert "[attachment: shot.png (image/png)]" in user_message(turn).content
        await wait_until(lambda: settled(app))

        # The inbox keeps references only: no file contents, inlined or otherwise.
        [row] = await app.store.inbox_items()
        stored = json.dumps(row, default=str)
        assert "base64" not in stored and "data:" not in stored
        assert base64.b64encode(slack.files["shot.png"]).decode() not in stored
        assert [a["url"] for a in row["payload"]["attachments"]] == [
            slack.file_url("shot.png"), slack.file_url("dump.bin")
        ]
        # Nor does the run's record of its input.
        [run] = await app.store.list_runs()
        assert "base64" not in json.dumps(run.input)


async def test_a_slack_event_is_acknowledged_before_the_profile_arrives(
    daemon: Daemon, slack: FakeSlack
) -> None:
    """The one timed assertion the issue asks for: Slack's users.info takes 2 s, and the
    Events API request is still answered in under 100 ms, because the profile is fetched when
    the turn starts. Each delivery comes from someone the bot has never seen (no cached profile);
    the first request warms the server up so only the acknowledgement itself is measured."""
    people = {f"UNEW{n}": f"Newcomer {n}" for n in range(7)}
    for user, name in people.items():
        slack.add_user(user, name, f"{user.lower()}@example.com")
    slack.delay("users.info", 2.0)
    async with daemon() as app, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{app.http_port}/slack/events"

        async def timed(body: dict[str, Any]) -> float:
            raw = json.dumps(body).encode()
            started = time.perf_counter()
            async with session.post(url, data=raw, headers=signed_headers(raw)) as response:
                await response.read()
                assert response.status == 200
            return time.perf_counter() - started

        await timed(event_callback({"type": "channel_created", "channel": {"id": "CX", "name": "x"}}))
        roots = {user: slack.next_ts() for user in people}
        acks = [
            await timed(event_callback(message("D0DM" + user, user, "hello?", ts, channel_type="im")))
            for user, ts in roots.items()
        ]
        # None waited for users.info; and the typical one is well inside Slack's budget (the
        # median, so one hiccup of a busy test machine does not decide the outcome).
        assert max(acks) < 2.0, acks
        assert statistics.median(acks) < 0.1, acks

        # The turns still know who they talk to: each asked users.info once, at turn time.
        await wait_until(lambda: all(slack.thread("D0DM" + u, ts) for u, ts in roots.items()))
        await wait_until(lambda: settled(app))
        assert len(slack.calls_to("users.info")) == len(people)
        names = {t.smith.external_id: t.smith.display_name for t in runner_of(app).turns}
        assert names == {f"slack:{TEAM}:{user}": name for user, name in people.items()}
        for smith in await app.store.list_smiths():
            assert smith.display_name == people[smith.external_id.split(":")[-1]]
            assert smith.metadata["email"].endswith("@example.com")


async def test_a_file_off_slacks_file_hosts_never_gets_the_bot_token(
    daemon: Daemon, slack: FakeSlack
) -> None:
    """``url_private`` on a host ``slack.file_hosts`` does not list (the fake under another
    name): not asked at all, the turn told why."""
    slack.files["dump.log"] = b"token please"
    async with daemon() as app:
        ts = slack.next_ts()
        files = [{"id": "F7", "name": "dump.log", "mimetype": "text/plain", "size": 12,
                  "url_private": slack.file_url("dump.log").replace("127.0.0.1", "localhost")}]
        await deliver(app, event_callback(message("D0DM", "U0CUST", "see attached", ts,
                                                  channel_type="im", files=files)))
        await wait_until(lambda: slack.thread("D0DM", ts))
        [turn] = runner_of(app).turns
        [attachment] = turn.messages[0].attachments
        assert attachment.fetch_error == "localhost is not an allowed file host"
        assert "[attachment not fetched: dump.log (text/plain): localhost is not an allowed " \
            "file host]" in user_message(turn).content
    assert slack.file_downloads == []


async def test_a_file_or_profile_that_cannot_be_fetched_does_not_fail_the_turn(
    daemon: Daemon, slack: FakeSlack
) -> None:
    slack.files["slow.log"] = b"still writing"
    slack.delay("files", 5.0)
    async with daemon(pipeline={"resolve_timeout_seconds": 1.0}) as app:
        # Gone from Slack (404), from someone users.info does not know.
        gone = slack.next_ts()
        files = [{"id": "F9", "name": "gone.pdf", "mimetype": "application/pdf", "size": 100,
                  "url_private": slack.file_url("gone.pdf")}]
        await deliver(app, event_callback(message("D0DM", "UGHOST", "see attached", gone,
                                                  channel_type="im", files=files)))
        [reply] = await wait_until(lambda: slack.thread("D0DM", gone))
        assert reply["text"] == "**Echo:** see attached"
        [turn] = runner_of(app).turns
        [attachment] = turn.messages[0].attachments
        assert attachment.data is None and attachment.fetch_error == "HTTP 404"
        assert "[attachment not fetched: gone.pdf (application/pdf): HTTP 404]" in (
            user_message(turn).content
        )
        # No profile: the customer is named by their Slack user id.
        assert turn.smith.display_name == "UGHOST"

        # A download slower than the turn waits for: the turn goes on without it.
        slow = slack.next_ts()
        files = [{"id": "F8", "name": "slow.log", "mimetype": "text/plain", "size": 13,
                  "url_private": slack.file_url("slow.log")}]
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "and this", slow,
                                                  channel_type="im", files=files)))
        await wait_until(lambda: slack.thread("D0DM", slow))
        await wait_until(lambda: settled(app))
        [attachment] = runner_of(app).turns[1].messages[0].attachments
        assert attachment.fetch_error == "timed out"
        [run] = [r for r in await app.store.list_runs() if r.output_text == "and this"]
        assert run.input[0]["attachments"][0]["fetch_error"] == "timed out"


async def test_streaming_replies_use_the_chat_stream_api(daemon: Daemon, slack: FakeSlack) -> None:
    async with daemon(stream=True) as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "stream please", ts,
                                                  channel_type="im")))
        [reply] = await wait_until(lambda: [m for m in slack.thread("D0DM", ts)
                                            if m.get("streaming") is False])
        assert reply["text"] == "**Echo:** stream please"
        assert reply["metadata"]["event_type"] == "supportbot_action"
        assert slack.calls_to("chat.startStream")[0]["recipient_user_id"] == CUSTOMER
        assert slack.calls_to("chat.stopStream")
        assert not slack.calls_to("chat.postMessage")


async def test_thumbs_on_the_bots_reply_rate_the_answer_and_taking_them_back_unrates(
    daemon: Daemon, slack: FakeSlack
) -> None:
    async with daemon() as app:
        ts = slack.next_ts()
        await deliver(app, event_callback(message("D0DM", CUSTOMER, "How do I reset my password?",
                                                  ts, channel_type="im")))
        [reply] = await wait_until(lambda: slack.thread("D0DM", ts))
        await wait_until(lambda: settled(app))
        entry = (await app.store.outbox_entries())[0]

        def reaction(kind: str, name: str, on: str) -> dict[str, Any]:
            return {"type": kind, "user": CUSTOMER, "reaction": name,
                    "item": {"type": "message", "channel": "D0DM", "ts": on},
                    "item_user": BOT_USER, "event_ts": slack.next_ts()}

        async def ratings() -> list[tuple[str, str]]:
            given = await app.store.feedback.of_thread(entry.action.thread_id)
            return [(f.run_id, f.rating) for f in given]

        await deliver(app, event_callback(reaction("reaction_added", "+1::skin-tone-3",
                                                   reply["ts"])))
        assert await ratings() == [(entry.action.run_id, "up")]
        # A thumbs down from the same person replaces it; taking the down back removes it.
        await deliver(app, event_callback(reaction("reaction_added", "thumbsdown", reply["ts"])))
        assert await ratings() == [(entry.action.run_id, "down")]
        await deliver(app, event_callback(reaction("reaction_removed", "thumbsdown",
                                                   reply["ts"])))
        assert await ratings() == []
        # Other reactions, and thumbs on the customer's own message, rate nothing.
        await deliver(app, event_callback(reaction("reaction_added", "tada", reply["ts"])))
        await deliver(app, event_callback(reaction("reaction_added", "+1", ts)))
        assert await ratings() == []
