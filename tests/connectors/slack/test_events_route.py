"""``/slack/events`` checks the signature on the raw bytes before anything parses the body:
unsigned requests are 401 whatever they carry, and nothing of them reaches the log."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from tests.connectors.slack.conftest import CUSTOMER, Daemon, inbound
from tests.fakes.slack import FakeSlack, event_callback, message, signed_headers

SECRET_WORDS = "my card number is 4242 4242 4242 4242"


async def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(
        f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers
    ) as response:
        return response.status, await response.text()


async def test_unsigned_requests_are_401_before_the_body_is_read(
    daemon: Daemon, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    event = json.dumps(event_callback(message("D0DM", CUSTOMER, SECRET_WORDS, slack.next_ts(),
                                              channel_type="im"))).encode()
    async with daemon() as app:
        port = app.http_port
        assert port is not None
        json_type = {"Content-Type": "application/json"}
        # The report's reproduction (`--data 5`), deep nesting, and a real event, all unsigned.
        for body in (b"5", b"[" * 100_000, event, b"\xff\xfe"):
            status, text = await _post(port, body, json_type)
            assert status == 401 and json.loads(text) == {"error": "invalid request signature"}
        # Signed with another secret, or an old timestamp, or a timestamp that is no number.
        for headers in (signed_headers(event, secret="someone-else"),
                        signed_headers(event, timestamp=1_600_000_000),
                        {**signed_headers(event), "X-Slack-Request-Timestamp": "soon"}):
            status, _ = await _post(port, event, headers)
            assert status == 401
        assert await inbound(app)() == []
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert SECRET_WORDS not in logged and "4242" not in logged
    assert "Slack request refused: bad or missing X-Slack-Signature" in logged


async def test_signed_payloads_of_other_shapes_are_400(daemon: Daemon, slack: FakeSlack) -> None:
    async with daemon() as app:
        port = app.http_port
        assert port is not None
        ts = slack.next_ts()
        odd_event = event_callback(message("D0DM", CUSTOMER, "hi", ts, channel_type="im"))
        odd_event["event"]["channel"] = ["D0DM"]  # a list where Slack sends a string
        for body in (b"5", b"[]", b"[" * 100_000, b'{"a": NaN}',
                     b"payload=" + b"[" * 5_000, json.dumps(odd_event).encode(),
                     json.dumps({"type": "event_callback", "event": True}).encode()):
            status, text = await _post(port, body, signed_headers(body))
            assert status == 400, (body[:40], status, text)
            assert json.loads(text)["error"]
        assert await inbound(app)() == []
        # And a well-formed signed event still goes through Bolt to the inbox.
        good = json.dumps(event_callback(message("D0DM", CUSTOMER, "hello", slack.next_ts(),
                                                 channel_type="im"))).encode()
        status, _ = await _post(port, good, signed_headers(good))
        assert status == 200
        assert [m.text for m in await inbound(app)()] == ["hello"]
