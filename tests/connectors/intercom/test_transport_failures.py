"""Transport failures the fake Intercom cannot produce on cue (refused, DNS failure, a reset
after the request went out, a timeout mid-body), with ``aioresponses`` in place of the
network: a read is retried, a reply whose request certainly never left is retried, and a reply
that may have arrived is never re-posted blindly — it surfaces as an unknown outcome, and the
outbox's next try looks for it among the conversation's parts before sending again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from bot.app import Application
from bot.config import IntercomSettings
from bot.domain import InboundMessage, OutboxStatus
from connectors.intercom.client import IntercomClient, IntercomError
from tests.conftest import make_settings
from tests.connectors.intercom.conftest import ScriptedRunner, wait_until
from tests.fakes.transport_failures import (
    AFTER_SENDING,
    BEFORE_SENDING,
    cut_body,
    mocked_http,
    read_timeout,
)

TOKEN = "icm-token-do-not-leak"
BASE = "https://intercom.test"
CONVERSATION_URL = f"{BASE}/conversations/c1"
REPLY_URL = f"{BASE}/conversations/c1/reply"
ADMIN = "991"

Failure = Callable[[], BaseException]
ALL_FAILURES: dict[str, Failure] = {**BEFORE_SENDING, **AFTER_SENDING}


def conversation(*parts: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "conversation",
        "id": "c1",
        "state": "open",
        "open": True,
        "created_at": 1_700_000_000,
        "updated_at": 1_700_000_000,
        "source": {"id": "s1", "body": "<p>help</p>", "author": {"type": "user", "id": "u1"}},
        "conversation_parts": {"conversation_parts": list(parts)},
    }


def admin_part(part_id: str, body: str) -> dict[str, Any]:
    return {
        "id": part_id,
        "part_type": "comment",
        "body": body,
        "author": {"type": "admin", "id": ADMIN},
        "created_at": 2_000_000_000,
    }


def requests_to(mocked: aioresponses, method: str, url: str) -> list[Any]:
    return list(mocked.requests.get((method, URL(url)), []))


@pytest.fixture
async def client() -> AsyncIterator[IntercomClient]:
    settings = IntercomSettings(
        token=TOKEN, base_url=BASE, max_retries=2, retry_backoff_seconds=0.001
    )
    intercom = IntercomClient(settings)
    try:
        yield intercom
    finally:
        await intercom.close()


# -- reads: every failure is retried -------------------------------------------------------------


@pytest.mark.parametrize("failure", ALL_FAILURES.values(), ids=ALL_FAILURES.keys())
async def test_a_read_is_retried_after_any_transport_failure(
    client: IntercomClient, failure: Failure
) -> None:
    with mocked_http() as mocked:
        mocked.get(CONVERSATION_URL, exception=failure())
        mocked.get(CONVERSATION_URL, payload=conversation())
        found = await client.find_conversation("c1")
    assert found["id"] == "c1"
    assert len(requests_to(mocked, "GET", CONVERSATION_URL)) == 2


async def test_a_read_whose_answer_stops_mid_body_is_retried(client: IntercomClient) -> None:
    with mocked_http() as mocked:
        mocked.get(CONVERSATION_URL, callback=cut_body('{"type": "conversa', read_timeout()))
        mocked.get(CONVERSATION_URL, payload=conversation())
        found = await client.find_conversation("c1")
    assert found["id"] == "c1"
    assert len(requests_to(mocked, "GET", CONVERSATION_URL)) == 2


async def test_a_read_that_never_gets_through_ends_in_a_clear_error(client: IntercomClient) -> None:
    with mocked_http() as mocked:
        mocked.get(CONVERSATION_URL, exception=BEFORE_SENDING["refused"](), repeat=True)
        with pytest.raises(IntercomError) as caught:
            await client.find_conversation("c1")
    # max_retries=2: the first try and two more, then the error.
    assert len(requests_to(mocked, "GET", CONVERSATION_URL)) == 3
    assert str(caught.value) == "GET /conversations/c1: cannot reach Intercom (ClientConnectorError)"
    assert TOKEN not in str(caught.value)


# -- replies: resent only when the first request certainly never left ----------------------------


async def _reply(client: IntercomClient) -> dict[str, Any]:
    return await client.reply("c1", admin_id=ADMIN, message_type="comment", body="<p>Hi</p>")


@pytest.mark.parametrize("failure", BEFORE_SENDING.values(), ids=BEFORE_SENDING.keys())
async def test_a_reply_that_never_left_is_sent_again(client: IntercomClient, failure: Failure) -> None:
    with mocked_http() as mocked:
        mocked.post(REPLY_URL, exception=failure())
        mocked.post(REPLY_URL, payload=conversation(admin_part("p1", "<p>Hi</p>")))
        answer = await _reply(client)
    assert answer["id"] == "c1"
    assert len(requests_to(mocked, "POST", REPLY_URL)) == 2


@pytest.mark.parametrize("failure", AFTER_SENDING.values(), ids=AFTER_SENDING.keys())
async def test_a_reply_that_may_have_arrived_is_not_sent_again(
    client: IntercomClient, failure: Failure
) -> None:
    with mocked_http() as mocked:
        mocked.post(REPLY_URL, exception=failure())
        # Would answer a blind second POST: it must never be asked.
        mocked.post(REPLY_URL, payload=conversation(admin_part("p1", "<p>Hi</p>")))
        with pytest.raises(IntercomError) as caught:
            await _reply(client)
    assert len(requests_to(mocked, "POST", REPLY_URL)) == 1
    error = caught.value
    # The outbox tries the action again, and that try looks before it posts.
    assert error.unknown_outcome and error.retryable and error.status is None
    assert "no answer from Intercom" in str(error) and TOKEN not in str(error)


@pytest.mark.parametrize(
    "failure",
    [read_timeout, lambda: aiohttp.ClientPayloadError("Response payload is not completed")],
    ids=["timeout mid-body", "reset mid-body"],
)
async def test_a_reply_whose_answer_stops_mid_body_is_not_sent_again(
    client: IntercomClient, failure: Failure
) -> None:
    with mocked_http() as mocked:
        mocked.post(REPLY_URL, callback=cut_body('{"type": "conversation", "id": "c1", ', failure()))
        mocked.post(REPLY_URL, payload=conversation(admin_part("p1", "<p>Hi</p>")))
        with pytest.raises(IntercomError) as caught:
            await _reply(client)
    assert len(requests_to(mocked, "POST", REPLY_URL)) == 1
    assert caught.value.unknown_outcome and caught.value.retryable


async def test_tagging_is_safe_to_repeat_and_is_retried_after_a_reset(client: IntercomClient) -> None:
    url = f"{BASE}/conversations/c1/tags"
    with mocked_http() as mocked:
        mocked.post(url, exception=AFTER_SENDING["connection reset"]())
        mocked.post(url, payload={"type": "tag", "id": "t1", "name": "billing"})
        tag = await client.tag_conversation("c1", tag_id="t1", admin_id=ADMIN)
    assert tag["id"] == "t1"
    assert len(requests_to(mocked, "POST", url)) == 2


# -- through the outbox: the next try reconciles before it resends -------------------------------


class Intercom:
    """The parts of conversation c1 that the bot's reply POSTs created."""

    def __init__(self, *, first_reply_lands: bool) -> None:
        self.parts: list[dict[str, Any]] = []
        self.first_reply_lands = first_reply_lands

    def _post(self, kwargs: dict[str, Any]) -> None:
        self.parts.append(admin_part(f"p{len(self.parts) + 1}", kwargs["json"]["body"]))

    def first_reply(self, url: Any, **kwargs: Any) -> None:
        """The first POST: stored by Intercom (or lost on the way) before the reset."""
        if self.first_reply_lands:
            self._post(kwargs)

    def later_reply(self, url: Any, **kwargs: Any) -> CallbackResult:
        self._post(kwargs)
        return CallbackResult(payload=conversation(*self.parts))

    def conversation(self, url: Any, **kwargs: Any) -> CallbackResult:
        return CallbackResult(payload=conversation(*self.parts))


@pytest.mark.parametrize(
    ("landed", "posts"),
    [(True, 1), (False, 2)],
    ids=["the reset reply had arrived: found, not resent", "it had not: looked for, then resent"],
)
async def test_a_reply_reset_after_sending_is_looked_for_before_the_outbox_resends_it(
    sqlite_url: str, landed: bool, posts: int
) -> None:
    intercom = Intercom(first_reply_lands=landed)
    settings = make_settings(
        sqlite_url,
        connectors=["intercom"],
        intercom={
            "token": TOKEN,
            "base_url": BASE,
            "retry_backoff_seconds": 0.001,
            "poll_interval_seconds": 0,
        },
    )

    async def factory(app: Application) -> ScriptedRunner:
        return ScriptedRunner(app)

    with mocked_http() as mocked:
        mocked.get(f"{BASE}/me", payload={"type": "admin", "id": ADMIN}, repeat=True)
        # The first reply reaches Intercom (or not), and then the connection is reset.
        mocked.post(
            REPLY_URL, callback=intercom.first_reply, exception=AFTER_SENDING["connection reset"]()
        )
        mocked.post(REPLY_URL, callback=intercom.later_reply, repeat=True)
        mocked.get(CONVERSATION_URL, callback=intercom.conversation, repeat=True)
        app = Application(settings, runner_factory=factory, serve_http=False)
        async with app:
            await app.submit(
                InboundMessage(
                    source="intercom",
                    dedup_key="part-1",
                    thread_external_id="intercom:c1",
                    smith_external_id="intercom:u1",
                    text="where is my parcel",
                )
            )

            async def sent() -> bool:
                entries = await app.store.outbox_entries()
                return bool(entries) and all(e.status is OutboxStatus.DONE for e in entries)

            await wait_until(sent, what="the reply to be sent")
    called = {f"{method} {url.path}" for method, url in mocked.requests}
    assert called <= {"GET /me", "GET /conversations/c1", "POST /conversations/c1/reply"}
    assert len(requests_to(mocked, "POST", REPLY_URL)) == posts
    # Whatever the network did, the customer has the answer exactly once.
    assert len(intercom.parts) == 1
    assert "where is my parcel" in intercom.parts[0]["body"]
    # The resend looked at the conversation before deciding.
    assert requests_to(mocked, "GET", CONVERSATION_URL)
