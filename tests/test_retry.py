"""The one retry vocabulary: ``Retry-After`` parsing, the wait that honours it, one error base."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_fixed

from bot.connector import ActionError
from bot.providers.base import ProviderError
from bot.retry import RemoteError, parse_retry_after, wait_retry_after
from connectors.intercom.client import IntercomError
from connectors.slack.errors import ShortRateLimitRetryHandler, action_error


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    # A date without a zone is read as UTC, not as local time.
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_the_three_errors_share_one_base_and_keep_their_defaults() -> None:
    assert isinstance(ActionError("x"), RemoteError) and ActionError("x").retryable
    assert isinstance(IntercomError("x"), RemoteError) and IntercomError("x").retryable
    assert isinstance(ProviderError("x"), RemoteError) and not ProviderError("x").retryable
    error = IntercomError("x", status=503, unknown_outcome=True, retry_after=2.5)
    assert (error.status, error.unknown_outcome, error.retry_after) == (503, True, 2.5)


async def _waits(*errors: BaseException, backoff: float) -> list[float]:
    """The sleeps ``wait_retry_after(wait_fixed(backoff))`` asks for between failing attempts."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    remaining = list(errors)
    retrying = AsyncRetrying(
        wait=wait_retry_after(wait_fixed(backoff)),
        stop=stop_after_attempt(len(errors) + 1),
        retry=retry_if_exception(lambda exc: isinstance(exc, Exception)),
        sleep=sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            if remaining:
                raise remaining.pop(0)
    return slept


async def test_wait_is_the_longer_of_backoff_and_retry_after() -> None:
    slept = await _waits(
        ActionError("slow down", retry_after=30.0),  # longer than the backoff: wait it out
        IntercomError("busy", retry_after=0.5),  # shorter: the backoff stands
        ProviderError("said nothing", retryable=True),  # no Retry-After: the backoff
        ValueError("not a remote error"),
        backoff=2.0,
    )
    assert slept == [30.0, 2.0, 2.0, 2.0]


def test_wait_without_an_outcome_is_the_backoff() -> None:
    state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
    assert wait_retry_after(wait_fixed(1.5))(state) == 1.5


@pytest.mark.parametrize(
    ("value", "inline"),
    [("2", True), ("120", False), ("Wed, 21 Oct 2099 07:28:00 GMT", False), ("soon", False)],
)
async def test_slack_waits_out_only_a_short_retry_after_inside_the_call(
    value: str, inline: bool
) -> None:
    """A long pause — in seconds or as an HTTP date — is left to the outbox."""
    handler = ShortRateLimitRetryHandler(max_retry_count=2, max_wait_seconds=5.0)
    response = HttpResponse(status_code=429, headers={"retry-after": [value]}, body={}, data=b"")
    request = HttpRequest(
        method="POST", url="https://slack.com/api/chat.postMessage", headers={}, body_params={}
    )
    assert await handler._can_retry_async(
        state=RetryState(), request=request, response=response
    ) is inline


def _slack_rate_limited(value: str) -> ActionError:
    response = AsyncSlackResponse(
        client=None, http_verb="POST", api_url="https://slack.com/api/chat.postMessage",
        req_args={}, data={"ok": False, "error": "ratelimited"},
        headers={"Retry-After": value}, status_code=429,
    )
    return action_error("chat.postMessage", SlackApiError("rate limited", response))


def test_slack_rate_limit_error_carries_retry_after() -> None:
    assert _slack_rate_limited("7").retry_after == 7.0
    # An HTTP date too (the form the other platforms use), and a year away is a year away.
    later = _slack_rate_limited("Wed, 21 Oct 2099 07:28:00 GMT").retry_after
    assert later is not None and later > 365 * 86400
    assert _slack_rate_limited("soon").retry_after == 1.0  # unreadable: a second, as before
