"""Transport failures the fake Slack cannot produce on cue (refused, DNS failure, a reset after
the request went out, a timeout mid-body), with ``aioresponses`` in place of the network.

``chat.postMessage`` has no idempotency key: a post whose connection was never made is retried
inside the call; one that may have reached Slack is not — it surfaces as a retryable
``ActionError``, and the outbox's next try looks the thread up for the action's metadata before
it posts again. Reads and converging writes are retried inside the call.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses

from bot.app import Application
from bot.connector import ActionError, ConnectorRuntime
from bot.domain import Action, ActionKind, InboundMessage, OutboxStatus
from bot.pipeline.events import TurnEvents
from connectors.slack import SlackConnector, create
from connectors.slack.errors import web_api_method
from tests.conftest import make_settings
from tests.connectors.slack.conftest import ROOT, SUPPORT, ScriptedRunner, slack_thread
from tests.fakes.slack import TEAM, wait_until
from tests.fakes.transport_failures import (
    AFTER_SENDING,
    BEFORE_SENDING,
    cut_body,
    mocked_http,
    read_timeout,
)

TOKEN = "xoxb-do-not-leak-1234"
API = "https://slack.test/api/"
POST_URL = API + "chat.postMessage"
REPLIES = re.compile(re.escape(API + "conversations.replies") + r"(\?.*)?$")
BOT = "UBOT"

Failure = Callable[[], BaseException]


def posted(url: Any, **kwargs: Any) -> dict[str, Any]:
    """The body of a chat.postMessage as slack-sdk sent it."""
    return dict(kwargs.get("json") or json.loads(kwargs["data"]))


class Slack:
    """The messages the bot's posts put into the thread, by what reached Slack."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def store(self, url: Any, **kwargs: Any) -> dict[str, Any]:
        body = posted(url, **kwargs)
        message = {
            "type": "message",
            "user": BOT,
            "bot_id": "B1",
            "text": body["text"],
            "ts": f"1700000001.{len(self.messages):06d}",
            "thread_ts": body.get("thread_ts"),
            "metadata": body.get("metadata"),
        }
        self.messages.append(message)
        return message

    def reached_then_reset(self, url: Any, **kwargs: Any) -> None:
        """Slack stores the post, then the connection is reset before its answer."""
        self.store(url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> CallbackResult:
        message = self.store(url, **kwargs)
        return CallbackResult(payload={"ok": True, "channel": SUPPORT, "ts": message["ts"]})

    def replies(self, url: Any, **kwargs: Any) -> CallbackResult:
        root = {"type": "message", "user": "UCUST", "text": "help", "ts": ROOT}
        return CallbackResult(
            payload={"ok": True, "messages": [root, *self.messages], "has_more": False}
        )


def mock_auth(mocked: aioresponses) -> None:
    mocked.post(
        API + "auth.test",
        payload={"ok": True, "user_id": BOT, "bot_id": "B1", "team_id": TEAM},
        repeat=True,
    )


def calls(mocked: aioresponses, method: str) -> list[Any]:
    return [
        call
        for (_, url), found in mocked.requests.items()
        if web_api_method(str(url)) == method
        for call in found
    ]


@pytest.fixture
async def mocked() -> AsyncIterator[aioresponses]:
    with mocked_http() as mocked:
        mock_auth(mocked)
        yield mocked


@pytest.fixture
async def connector(mocked: aioresponses) -> AsyncIterator[SlackConnector]:
    settings = make_settings(
        "sqlite://", slack={"bot_token": TOKEN, "base_url": API, "post_interval_seconds": 0}
    )

    async def submit(message: InboundMessage) -> bool:
        return True

    # ``execute`` of a reply never touches the store.
    made = create(ConnectorRuntime(settings, None, submit, TurnEvents(), None))  # type: ignore[arg-type]
    assert isinstance(made, SlackConnector)
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


def reply(attempt: int = 0) -> Action:
    thread = slack_thread()
    return Action(id="act_reply", run_id="run_1", thread_id=thread.id, channel="slack",
                  kind=ActionKind.REPLY, ref=dict(thread.metadata), attempt=attempt,
                  text="Your parcel left the depot this morning.")


# -- chat.postMessage --------------------------------------------------------------------------


@pytest.mark.parametrize("failure", BEFORE_SENDING.values(), ids=BEFORE_SENDING.keys())
async def test_a_post_that_never_left_is_sent_again_within_the_call(
    connector: SlackConnector, mocked: aioresponses, failure: Failure
) -> None:
    slack = Slack()
    mocked.post(POST_URL, exception=failure())
    mocked.post(POST_URL, callback=slack.post)
    remote = await connector.execute(reply(), slack_thread())
    assert len(calls(mocked, "chat.postMessage")) == 2
    assert [m["ts"] for m in slack.messages] == [remote]


@pytest.mark.parametrize("failure", AFTER_SENDING.values(), ids=AFTER_SENDING.keys())
async def test_a_post_that_may_have_arrived_is_not_sent_again_within_the_call(
    connector: SlackConnector, mocked: aioresponses, failure: Failure
) -> None:
    slack = Slack()
    mocked.post(POST_URL, callback=slack.reached_then_reset, exception=failure())
    mocked.post(POST_URL, callback=slack.post, repeat=True)
    with pytest.raises(ActionError) as caught:
        await connector.execute(reply(), slack_thread())
    assert len(calls(mocked, "chat.postMessage")) == 1
    assert len(slack.messages) == 1
    # The outbox tries again; that try looks for the action's metadata first.
    assert caught.value.retryable
    assert str(caught.value).startswith("chat.postMessage: ") and TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [read_timeout, lambda: aiohttp.ClientPayloadError("Response payload is not completed")],
    ids=["timeout mid-body", "reset mid-body"],
)
async def test_a_post_whose_answer_stops_mid_body_is_not_sent_again_within_the_call(
    connector: SlackConnector, mocked: aioresponses, failure: Failure
) -> None:
    slack = Slack()
    mocked.post(POST_URL, callback=cut_body('{"ok": true, "channel": "CSUP", "ts": "17', failure(),
                                            on_request=slack.reached_then_reset))
    mocked.post(POST_URL, callback=slack.post, repeat=True)
    with pytest.raises(ActionError) as caught:
        await connector.execute(reply(), slack_thread())
    assert caught.value.retryable
    assert len(calls(mocked, "chat.postMessage")) == 1 and len(slack.messages) == 1


async def test_the_next_try_finds_the_post_that_arrived_and_does_not_post_again(
    connector: SlackConnector, mocked: aioresponses
) -> None:
    slack = Slack()
    mocked.post(POST_URL, callback=slack.reached_then_reset, exception=AFTER_SENDING["connection reset"]())
    mocked.post(POST_URL, callback=slack.post, repeat=True)
    mocked.get(REPLIES, callback=slack.replies, repeat=True)
    with pytest.raises(ActionError):
        await connector.execute(reply(), slack_thread())
    remote = await connector.execute(reply(attempt=1), slack_thread())
    assert remote == slack.messages[0]["ts"]
    assert len(calls(mocked, "chat.postMessage")) == 1 and len(slack.messages) == 1


# -- reads and converging writes are retried within the call -----------------------------------


RESETS = {k: v for k, v in AFTER_SENDING.items() if k != "total timeout"}


@pytest.mark.parametrize("failure", RESETS.values(), ids=RESETS.keys())
async def test_the_lookup_before_a_resend_is_retried_after_a_reset(
    connector: SlackConnector, mocked: aioresponses, failure: Failure
) -> None:
    slack = Slack()
    mocked.get(REPLIES, exception=failure())
    mocked.get(REPLIES, callback=slack.replies, repeat=True)
    mocked.post(POST_URL, callback=slack.post)
    await connector.execute(reply(attempt=1), slack_thread())
    assert len(calls(mocked, "conversations.replies")) == 2
    assert len(slack.messages) == 1


async def test_a_lookup_that_times_out_posts_nothing(
    connector: SlackConnector, mocked: aioresponses
) -> None:
    # slack-sdk retries no timeout, whatever the method: the outbox tries again later.
    slack = Slack()
    mocked.get(REPLIES, exception=AFTER_SENDING["total timeout"]())
    mocked.post(POST_URL, callback=slack.post, repeat=True)
    with pytest.raises(ActionError) as caught:
        await connector.execute(reply(attempt=1), slack_thread())
    assert caught.value.retryable
    assert str(caught.value) == "conversations.replies: TimeoutError: "
    assert calls(mocked, "chat.postMessage") == [] and slack.messages == []


async def test_a_reaction_is_retried_after_a_reset(
    connector: SlackConnector, mocked: aioresponses
) -> None:
    url = re.compile(re.escape(API + "reactions.add") + r"(\?.*)?$")
    mocked.post(url, exception=AFTER_SENDING["connection reset"]())
    mocked.post(url, payload={"ok": False, "error": "already_reacted"})
    thread = slack_thread()
    action = Action(id="act_react", run_id="run_1", thread_id=thread.id, channel="slack",
                    kind=ActionKind.REACT, ref=dict(thread.metadata), emoji="eyes")
    assert await connector.execute(action, thread) is None
    assert len(calls(mocked, "reactions.add")) == 2


def test_the_method_is_read_from_the_url() -> None:
    assert web_api_method(POST_URL) == "chat.postMessage"
    assert web_api_method(API + "conversations.replies?channel=C1&ts=1.2") == "conversations.replies"


# -- through the outbox ----------------------------------------------------------------------


async def test_a_reply_reset_after_sending_reaches_the_thread_once_through_the_outbox(
    sqlite_url: str,
) -> None:
    slack = Slack()
    settings = make_settings(
        sqlite_url,
        connectors=["slack"],
        slack={"bot_token": TOKEN, "signing_secret": "s" * 32, "base_url": API,
               "support_channels": [SUPPORT], "post_interval_seconds": 0},
    )

    async def factory(app: Application) -> ScriptedRunner:
        return ScriptedRunner(app)

    with mocked_http() as mocked:
        mock_auth(mocked)
        mocked.post(POST_URL, callback=slack.reached_then_reset,
                    exception=AFTER_SENDING["server disconnected"]())
        mocked.post(POST_URL, callback=slack.post, repeat=True)
        mocked.get(REPLIES, callback=slack.replies, repeat=True)
        # The working reaction and its removal, whatever the turn does around the reply.
        mocked.post(API + "reactions.add", payload={"ok": True}, repeat=True)
        mocked.post(API + "reactions.remove", payload={"ok": True}, repeat=True)
        app = Application(settings, runner_factory=factory, serve_http=False)
        async with app:
            thread = slack_thread()
            await app.submit(InboundMessage(
                source="slack", dedup_key="Ev1", thread_external_id=thread.external_id,
                smith_external_id=f"slack:{TEAM}:UCUST", text="where is my parcel",
                ref=dict(thread.metadata),
            ))

            async def sent() -> bool:
                entries = await app.store.outbox_entries()
                return bool(entries) and all(e.status is OutboxStatus.DONE for e in entries)

            await wait_until(sent)
    assert len(calls(mocked, "chat.postMessage")) == 1
    assert [m["metadata"]["event_payload"]["part"] for m in slack.messages] == [0]
    assert "where is my parcel" in slack.messages[0]["text"]
    assert calls(mocked, "conversations.replies")
