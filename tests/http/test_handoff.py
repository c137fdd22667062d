"""Web handoff end to end over real HTTP: a visitor escalates through the real engine (offline
responder), the escalation is announced in the fake Slack's escalation channel and to a signed
webhook on a capture server, a person answers through the operator API and the visitor's
stream shows it live, the bot stays silent while the person holds the thread (the visitor's
messages are kept and shown), and answers again once the thread is handed back."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.agent.context import history_messages
from bot.agent.simulate import simulation_settings
from bot.config import Settings
from bot.domain import OutboxStatus
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.http.harness import ADMIN, Daemon, json_call, running, session

PUBLIC_URL = "https://support.example.com"
ESCALATION = "CESCALATE"
HOOK_SECRET = "webhook-secret-for-tests-0123456789"
HTTP = {"host": "127.0.0.1", "port": 0, "public_url": PUBLIC_URL}


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0) -> Any:
    """``check()``'s first truthy value, polled until ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


async def escalate(daemon: Daemon, visitor: aiohttp.ClientSession) -> tuple[str, str]:
    """The visitor asks for a person; (conversation id, thread id)."""
    await session(visitor)
    conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
    answer = await json_call(visitor, "POST", f"/v1/conversations/{conversation['id']}/messages",
                             json={"content": "I want to talk to a person please",
                                   "stream": False})
    assert answer["stop_reason"] == "escalated", answer
    assert answer["conversation"]["control"] == "human"
    async with daemon.admin() as admin:
        found = await json_call(admin, "GET", "/v1/threads?state=escalated")
    (thread,) = found["data"]
    return conversation["id"], thread["id"]


# -- announcements ---------------------------------------------------------------------------


async def test_a_web_escalation_is_posted_in_the_slack_escalation_channel_with_the_console_link(
    sqlite_url: str,
) -> None:
    async with FakeSlack() as slack, running(
        sqlite_url, real_engine=True, connectors=["web", "slack"], http=HTTP,
        slack={"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
               "base_url": slack.base_url, "escalation_channel": ESCALATION,
               "escalation_mention": "S0ONCALL", "post_interval_seconds": 0},
    ) as daemon, daemon.client() as visitor:
        _, thread_id = await escalate(daemon, visitor)

        def announced() -> list[dict[str, Any]]:
            return [c for c in slack.calls_to("chat.postMessage")
                    if c.get("channel") == ESCALATION]

        (post,) = await eventually(announced)
        text = post["text"]
        assert f"<{PUBLIC_URL}/console/threads/{thread_id}|Open in the console>" in text
        assert "*Escalation* (normal) on web: The customer asked to talk to a person." in text
        assert text.startswith("<!subteam^S0ONCALL>")
        assert "> " in text  # the short summary, quoted
        # Carried by the action's metadata, so a retried send finds it instead of reposting.
        assert post["metadata"]["event_payload"]["action_id"].startswith("act_")
        await asyncio.sleep(0.3)
        assert len(announced()) == 1


@dataclass
class CaptureServer:
    """A webhook receiver on 127.0.0.1 that answers 500 to the first ``failures`` deliveries."""

    failures: int = 0
    received: list[tuple[bytes, dict[str, str], int]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 500 if len(self.received) < self.failures else 204
        self.received.append((body, dict(request.headers), status))
        return web.Response(status=status)

    def delivered(self) -> list[bytes]:
        return [body for body, _, status in self.received if status == 204]


@pytest.fixture
async def capture() -> AsyncIterator[CaptureServer]:
    server = CaptureServer(failures=2)
    app = web.Application()
    app.router.add_post("/hooks/support", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    # A token in the query: it must not be logged.
    server.url = f"http://127.0.0.1:{port}/hooks/support?token=querytoken123"
    try:
        yield server
    finally:
        await runner.cleanup()


async def test_the_webhook_arrives_signed_and_a_500_is_retried_as_the_same_event(
    sqlite_url: str, capture: CaptureServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot")
    notify = [{"kind": "webhook", "url": capture.url, "secret": HOOK_SECRET}]
    async with running(sqlite_url, real_engine=True, http=HTTP, notify=notify,
                       pipeline={"poll_interval_seconds": 0.05, "outbox_backoff_seconds": 0.01,
                                 "outbox_backoff_max_seconds": 0.05}) as daemon, \
            daemon.client() as visitor:
        _, thread_id = await escalate(daemon, visitor)
        await eventually(capture.delivered)
        await asyncio.sleep(0.5)  # nothing more comes once it was accepted
        entries = await daemon.app.store.outbox_entries(thread_id=thread_id)

    assert [status for _, _, status in capture.received] == [500, 500, 204]
    bodies = {body for body, _, _ in capture.received}
    assert len(bodies) == 1, "every try carries the same event"
    body = bodies.pop()
    for _, headers, _ in capture.received:
        expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Supportbot-Signature"] == expected
        assert headers["Content-Type"] == "application/json"
    event = json.loads(body)
    assert event["type"] == "thread.escalated"
    assert headers["X-Supportbot-Event-Id"] == event["id"]
    assert event["console_url"] == f"{PUBLIC_URL}/console/threads/{thread_id}"
    assert event["priority"] == "normal"
    assert event["reason"] == "The customer asked to talk to a person."
    assert event["thread"]["id"] == thread_id and event["thread"]["channel"] == "web"
    assert "target" not in event
    (announcement,) = [e for e in entries if e.action.channel == "notify"]
    assert announcement.status is OutboxStatus.DONE and announcement.attempts == 3
    assert announcement.action.id == event["id"]
    # What the daemon logged (the capture server's own access log is the receiver's business).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert HOOK_SECRET not in logged and "querytoken123" not in logged
    assert "/hooks/support?token=***" in logged  # the URL is named, its token masked


def test_notify_targets_come_from_the_environment_as_a_json_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUPPORTBOT_NOTIFY", json.dumps(
        [{"kind": "webhook", "url": "https://hooks.example.com/x", "secret": "s" * 32}]))
    settings = Settings()
    (target,) = settings.notify
    assert target.kind == "webhook" and target.url == "https://hooks.example.com/x"
    assert target.secret.get_secret_value() == "s" * 32
    assert "s" * 32 not in repr(settings)


# -- the operator API on a web thread -------------------------------------------------------


async def read_until(response: aiohttp.ClientResponse, name: str,
                     frames: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Read SSE frames into ``frames`` until one called ``name``; its data."""
    buffer = ""
    while True:
        chunk = await asyncio.wait_for(response.content.readany(), timeout=10)
        assert chunk, f"the stream ended before {name}"
        buffer += chunk.decode()
        while "\n\n" in buffer:
            frame, buffer = buffer.split("\n\n", 1)
            event, data = "message", ""
            for line in frame.split("\n"):
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
            if data:
                frames.append((event, json.loads(data)))
                if event == name:
                    return frames[-1][1]


async def test_a_person_answers_the_visitor_live_then_hands_back_to_the_bot(
    db_url: str,
) -> None:
    async with running(db_url, real_engine=True) as daemon, daemon.client() as visitor, \
            daemon.admin() as admin:
        conversation_id, thread_id = await escalate(daemon, visitor)
        frames: list[tuple[str, dict[str, Any]]] = []
        async with visitor.get(f"/v1/conversations/{conversation_id}/events") as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            first = await read_until(stream, "thread.updated", frames)
            assert first == {"state": "escalated", "control": "human"}

            sent = await json_call(admin, "POST", f"/v1/threads/{thread_id}/messages", 201,
                                   json={"content": "Hi, Grace here. Let me look at your "
                                                    "invoice.", "author": {"name": "Grace"}})
            assert sent["author"] == {"name": "Grace"} and sent["role"] == "person"
            assert sent["thread"]["control"] == "human"
            live = await read_until(stream, "person.message", frames)
        assert live["id"] == sent["id"]
        assert live["author"] == {"kind": "person", "name": "Grace"}
        assert live["content"][0]["text"] == "Hi, Grace here. Let me look at your invoice."

        # While Grace holds it the bot is silent, and the visitor's message is kept and shown.
        held = await json_call(visitor, "POST", f"/v1/conversations/{conversation_id}/messages",
                               json={"content": "Thanks, it is invoice 42", "stream": False})
        assert held["status"] == "skipped" and held["output_text"] == ""
        items = await json_call(visitor, "GET", f"/v1/conversations/{conversation_id}/items")
        said = [(i["role"], i.get("author", {}).get("name"), i["content"][0].get("text"))
                for i in items["data"]]
        assert said[-2:] == [
            ("assistant", "Grace", "Hi, Grace here. Let me look at your invoice."),
            ("user", None, "Thanks, it is invoice 42"),
        ]
        # The person holding the thread reads it too: the transcript (the console's) has it.
        seen = await json_call(admin, "GET", f"/v1/threads/{thread_id}/transcript")
        assert [(m["content"], m["status"]) for m in seen["customer_messages"]] == [
            ("Thanks, it is invoice 42", "skipped")]
        assert [m["content"] for m in seen["person_messages"]] == [
            "Hi, Grace here. Let me look at your invoice."]
        (waiting,) = (await json_call(admin, "GET", "/v1/inbox"))["data"]
        assert (waiting["id"], waiting["last_message"]) == (thread_id, "Thanks, it is invoice 42")
        # A stream opened later resumes after the last message it has.
        async with visitor.get(f"/v1/conversations/{conversation_id}/events",
                               params={"after": live["cursor"]}) as again:
            replay: list[tuple[str, dict[str, Any]]] = []
            await read_until(again, "thread.updated", replay)
        assert [name for name, _ in replay] == ["thread.updated"]
        # Polling instead: one JSON answer at once, resumable the same way.
        events = f"/v1/conversations/{conversation_id}/events"
        polled = await json_call(visitor, "GET", events,
                                 headers={"Accept": "application/json"})
        assert (polled["state"], polled["control"]) == ("escalated", "human")
        assert [i["id"] for i in polled["data"]] == [sent["id"]]
        assert polled["cursor"] == live["cursor"]
        polled = await json_call(visitor, "GET", events, params={"after": polled["cursor"]},
                                 headers={"Accept": "application/json"})
        assert polled["data"] == [] and polled["cursor"] == live["cursor"]
        await json_call(visitor, "GET", events, 400, params={"after": "nan"},
                        headers={"Accept": "application/json"})

        back = await json_call(admin, "POST", f"/v1/threads/{thread_id}/handback")
        assert (back["state"], back["control"]) == ("open", "bot")
        answered = await json_call(
            visitor, "POST", f"/v1/conversations/{conversation_id}/messages",
            json={"content": "How do I reset my password?", "stream": False})
        assert answered["status"] == "completed"
        assert "Forgot password" in answered["output_text"]

        closed = await json_call(admin, "POST", f"/v1/threads/{thread_id}/close")
        assert closed["state"] == "closed"
        state = await json_call(visitor, "GET", f"/v1/conversations/{conversation_id}")
        assert state["state"] == "closed"


async def test_operator_requests_are_checked(sqlite_url: str) -> None:
    async with running(sqlite_url, real_engine=True) as daemon, daemon.client() as visitor, \
            daemon.admin() as admin:
        _, thread_id = await escalate(daemon, visitor)
        path = f"/v1/threads/{thread_id}/messages"
        good = {"content": "Hello", "author": {"name": "Grace"}}
        for body, code in [
            ({"author": {"name": "Grace"}}, "invalid_content"),
            ({"content": "   ", "author": {"name": "Grace"}}, "invalid_content"),
            ({"content": 5, "author": {"name": "Grace"}}, "invalid_content"),
            ({"content": "Hello"}, "invalid_author"),
            ({"content": "Hello", "author": {"name": ""}}, "invalid_author"),
            ({"content": "Hello", "author": "Grace"}, "invalid_author"),
            ({"content": "Hello", "author": {"name": "G" * 101}}, "invalid_author"),
            ({**good, "role": "assistant"}, "unknown_field"),
            ({"content": "Hello", "author": {"name": "Grace", "email": "g@x"}}, "unknown_field"),
            ({"content": "x" * 20_001, "author": {"name": "Grace"}}, "invalid_content"),
        ]:
            refused = await json_call(admin, "POST", path, 400, json=body)
            assert refused["error"]["code"] == code, body
        refused = await json_call(admin, "POST", path, 400, data=b"{not json",
                                  headers={"Content-Type": "application/json"})
        assert refused["error"]["message"]
        for action in ("messages", "handback", "close"):
            missing = await json_call(admin, "POST", f"/v1/threads/thr_nope/{action}", 404,
                                      json=good if action == "messages" else None)
            assert missing["error"]["code"] == "not_found"
        await json_call(admin, "POST", f"/v1/threads/{thread_id}/handback", 400,
                        json={"force": True})
        # Only the admin: a visitor's session cookie does not do.
        await json_call(visitor, "POST", path, 401, json=good)
        async with aiohttp.ClientSession(base_url=daemon.url) as anonymous:
            await json_call(anonymous, "POST", path, 401, json=good,
                            headers={"Authorization": "Bearer wrong"})
        assert ADMIN  # the admin client above carries it


async def test_threads_of_a_channel_with_its_own_helpdesk_are_answered_there(
    sqlite_url: str,
) -> None:
    async with FakeSlack() as slack, running(
        sqlite_url, real_engine=True, connectors=["web", "slack"],
        slack={"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
               "base_url": slack.base_url, "post_interval_seconds": 0},
    ) as daemon, daemon.admin() as admin:
        store = daemon.app.store
        agent = await store.get_agent("support")
        smith = await store.ensure_smith("slack:T1:U1", agent.id)
        slack_thread = await store.ensure_thread(smith, "slack:C1:1.0", "slack")
        helpdesk = await store.ensure_smith("intercom:contact-1", agent.id)
        intercom_thread = await store.ensure_thread(helpdesk, "intercom:conv-1", "intercom")
        for thread in (slack_thread, intercom_thread):
            refused = await json_call(admin, "POST", f"/v1/threads/{thread.id}/messages", 409,
                                      json={"content": "Hi", "author": {"name": "Grace"}})
            assert refused["error"]["code"] == "reply_in_channel"
            assert f"answered in {thread.channel} itself" in refused["error"]["message"]
            # Nothing was sent or kept, and nobody took the thread.
            assert (await store.get_thread(thread.id)).control.value == "bot"
            # Handing back and closing are the core's, on every channel.
            closed = await json_call(admin, "POST", f"/v1/threads/{thread.id}/close")
            assert closed["state"] == "closed"
        assert slack.calls_to("chat.postMessage") == []


async def test_after_the_handback_the_bot_knows_what_the_person_wrote(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as visitor, \
            daemon.admin() as admin:
        await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        messages = f"/v1/conversations/{conversation['id']}/messages"
        await json_call(visitor, "POST", messages,
                        json={"content": "A human please", "stream": False})
        (thread,) = (await json_call(admin, "GET", "/v1/threads?state=escalated"))["data"]
        await json_call(admin, "POST", f"/v1/threads/{thread['id']}/messages", 201,
                        json={"content": "I refunded order A42.", "author": {"name": "Grace"}})
        await json_call(admin, "POST", f"/v1/threads/{thread['id']}/handback")
        answered = await json_call(visitor, "POST", messages,
                                   json={"content": "When will I see the money?",
                                         "stream": False})
        assert answered["status"] == "completed"
    assert daemon.engine is not None
    turn = daemon.engine.turns[-1]
    assert [(who, text) for _, who, text in turn.people_said] == [
        ("Grace", "I refunded order A42.")]
    history = history_messages(turn.history, turn.people_said)
    assert [(m.role, m.content) for m in history] == [
        ("user", "A human please"),
        ("assistant", "I've passed this to our support team; a person will follow up."),
        ("assistant", "[Grace, a person from the support team, wrote:] I refunded order A42."),
    ]


def test_rehearsals_tell_no_webhook(tmp_path: Any) -> None:
    """``simulate`` and ``eval`` run real turns, escalations included: nobody is told."""
    configured = Settings.model_validate({"notify": [
        {"kind": "webhook", "url": "https://hooks.example.com/x", "secret": "s" * 32}]})
    rehearsal = simulation_settings(configured, f"sqlite+aiosqlite:///{tmp_path}/sim.db", {})
    assert configured.notify and rehearsal.notify == []
