"""The webhook endpoint: HEAD, ping, unknown topics, malformed JSON, size limits, secrets."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp

from connectors.intercom.webhook import sign, signature_ok
from tests.connectors.intercom.conftest import (
    CLIENT_SECRET,
    deliver,
    running_app,
    settled,
    wait_until,
)
from tests.fakes.intercom import FakeIntercom


def test_signature_check() -> None:
    body = b'{"topic": "ping"}'
    good = sign(b"secret", body)
    assert good.startswith("sha1=") and len(good) == 45
    assert signature_ok(b"secret", body, good)
    assert signature_ok(b"secret", body, good.upper().replace("SHA1=", "sha1="))
    assert not signature_ok(b"secret", body + b" ", good)
    assert not signature_ok(b"other", body, good)
    assert not signature_ok(b"secret", body, None)
    assert not signature_ok(b"secret", body, "")


async def test_head_ping_and_unknown_topics(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    async with running_app(sqlite_url, fake_intercom) as (app, _runner):
        url = f"http://127.0.0.1:{app.http_port}/webhooks/intercom"
        async with aiohttp.ClientSession() as session, session.head(url) as response:
            assert response.status == 200
        ping = {"type": "notification_event", "topic": "ping", "id": "notif_1",
                "data": {"type": "notification_event_data", "item": {"type": "ping", "message": "hi"}}}
        assert await deliver(app, ping) == (200, {"status": "ok", "reason": "pong"})
        status, answer = await deliver(app, {**ping, "topic": "contact.user.created"})
        assert status == 200 and "ignored" in answer["reason"]
        status, answer = await deliver(app, {**ping, "topic": "conversation.user.created"})
        assert status == 400 and "conversation" in answer["reason"]
        assert await app.store.inbox_counts() == {}
        assert await app.store.deliveries.counts() == {}


async def test_malformed_json_is_a_400_with_a_reason(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    async with running_app(sqlite_url, fake_intercom) as (app, _runner):
        status, answer = await deliver(app, b'{"topic": "conversation.user.created", ')
        assert status == 400 and answer["reason"].startswith("malformed JSON")
        status, answer = await deliver(app, b'["a list"]')
        assert status == 400 and "object" in answer["reason"]
        # A bad signature wins over bad JSON: nothing about the body is revealed.
        status, _ = await deliver(app, b"{not json", secret="wrong")
        assert status == 401


async def test_signed_bodies_nested_too_deep_are_a_400(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    async with running_app(sqlite_url, fake_intercom) as (app, _):
        # Validly signed, nested 100,000 deep: once a RecursionError and a 500.
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"topic": ' + b"[" * 100_000):
            status, answer = await deliver(app, body)
            assert status == 400 and "nested deeper" in answer["reason"], answer
        status, answer = await deliver(app, b'{"topic": "ping", "id": NaN}')
        assert status == 400 and answer["reason"].startswith("malformed JSON")
        # A signature header that is not ASCII is refused, not a crash.
        status, _ = await deliver(app, b'{"topic": "ping"}', signature="sha1=\u00e9\u00ff")
        assert status == 401
        assert await app.store.inbox_counts() == {}


async def test_bodies_over_the_limit_are_refused(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    async with running_app(sqlite_url, fake_intercom) as (app, _runner):
        limit = app.settings.http.max_body_bytes
        url = f"http://127.0.0.1:{app.http_port}/webhooks/intercom"
        huge = io.BytesIO(b'{"topic": "ping", "pad": "' + b"x" * limit + b'"}')
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=huge, headers={"X-Hub-Signature": "sha1=00"}) as response,
        ):
            assert response.status == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the read itself is capped
            for _ in range(limit // 65_536 + 2):
                yield b"x" * 65_536

        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=chunks(), headers={"X-Hub-Signature": "sha1=00"}) as response,
        ):
            assert response.status == 413
        assert await app.store.inbox_counts() == {}


async def test_without_a_client_secret_every_delivery_is_refused(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Hi</p>")
    async with running_app(sqlite_url, fake, client_secret=None) as (app, _runner):
        status, _ = await deliver(app, fake.notification("conversation.user.created", conversation),
                                  secret=CLIENT_SECRET)
        assert status == 401
        assert await app.store.inbox_counts() == {}


async def test_the_ack_comes_before_the_turn(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    """The webhook answers once the delivery is stored, without waiting for the turn or
    Intercom; a reply that first meets a slow 503 is delivered later, once."""
    fake = fake_intercom
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Hi</p>")
    source_id = fake.conversations[conversation].source["id"]
    async with running_app(sqlite_url, fake) as (app, _runner):
        fake.fail("POST", r"/conversations/\d+/reply", status=503, delay=1.0, retry_after=None)
        status, answer = await deliver(app, fake.notification("conversation.user.created", conversation))
        assert (status, answer["reason"]) == (200, "stored")
        assert await app.store.inbox_seen("intercom", f"{conversation}:source:{source_id}")
        assert fake.replies(conversation) == []
        await wait_until(lambda: settled(app), what="the reply after the 503")
        assert len(fake.replies(conversation)) == 1
