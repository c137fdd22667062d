"""Slack's failures told apart: which a retry can fix, how long Slack asks us to wait, and which
the workspace admin has to fix (logged loudly), plus the retry handlers of the Web API client."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.connector import ActionError
from bot.retry import parse_retry_after

log = logging.getLogger(__name__)

# Errors that no retry can fix: the workspace admin has to change something.
CONFIG_ERRORS = frozenset(
    {
        "missing_scope",
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "no_permission",
        "restricted_action",
        "not_allowed_token_type",
    }
)
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# What a Web API call can raise besides an API error: the transport's own failures.
CALL_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)


class ShortRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """Waits out a 429 inside the call only when Slack asks for a short pause.

    A longer ``Retry-After`` surfaces as an ``ActionError`` instead, so the outbox reschedules
    the action and gives up its lease: sleeping past the lease inside the call would let
    another sender take the action and post it a second time.
    """

    def __init__(self, *, max_retry_count: int, max_wait_seconds: float):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_seconds = max_wait_seconds

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        value = retry_after_header(response.headers)
        if value is None:
            return True
        wait = parse_retry_after(value)
        return wait is not None and wait <= self.max_wait_seconds


def retry_after_header(headers: Mapping[str, Any]) -> str | None:
    """The ``Retry-After`` value, whatever its case; slack-sdk's retry handlers see each
    header as a list of values."""
    for name, values in headers.items():
        if name.lower() == "retry-after":
            value = values[0] if isinstance(values, list) and values else values
            return value if isinstance(value, str) else None
    return None


# Web API methods a second request cannot turn into a second effect: reads, and writes that
# converge (a reaction already there answers ``already_reacted``, an update sets the same text,
# a deleted message answers ``message_not_found``).
REPEATABLE_METHODS = frozenset(
    {
        "auth.test",
        "chat.getPermalink",
        "conversations.history",
        "conversations.info",
        "conversations.replies",
        "usergroups.users.list",
        "users.info",
        "reactions.add",
        "reactions.remove",
        "chat.update",
        "chat.delete",
    }
)


class ConnectionErrorRetryHandler(AsyncConnectionErrorRetryHandler):
    """Retries a connection failure inside the call only when that cannot send anything twice.

    slack-sdk's own handler retries a reset or a disconnect after the request went out for
    every method, so a ``chat.postMessage`` whose answer was lost was posted again. Here a
    connection that was never made (refused, DNS failure, connect timeout) is retried for every
    method, an uncertain one only for ``REPEATABLE_METHODS``; any other surfaces as a
    retryable ``ActionError``, and the outbox's next try finds what arrived by its metadata
    before posting again.
    """

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
            return True
        if web_api_method(request.url) not in REPEATABLE_METHODS:
            return False
        return await super()._can_retry_async(
            state=state, request=request, response=response, error=error
        )


def web_api_method(url: str) -> str:
    """``chat.postMessage`` from ``https://slack.com/api/chat.postMessage?…``."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


async def web_api_call(method: str, request: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
    """The answer to a Web API call, or its failure as an ``ActionError``."""
    try:
        return await request
    except CALL_ERRORS as exc:
        raise action_error(method, exc) from None


def action_error(method: str, exc: Exception) -> ActionError:
    """An ``ActionError`` that says whether trying again can help, and logs what the workspace
    admin must fix (scopes, channel membership) loudly."""
    if not isinstance(exc, SlackApiError):
        return ActionError(f"{method}: {type(exc).__name__}: {exc}", retryable=True)
    response = exc.response
    error = str(response.get("error") or f"HTTP {response.status_code}")
    if response.status_code == 429 or error == "ratelimited":
        retry_after = parse_retry_after(retry_after_header(response.headers))
        return ActionError(f"{method}: rate limited", retryable=True, retry_after=retry_after or 1.0)
    if error in CONFIG_ERRORS:
        log_api_failure(method, exc)
        return ActionError(f"{method}: {error}", retryable=False)
    retryable = response.status_code >= 500 or error in TRANSIENT_ERRORS
    return ActionError(f"{method}: {error}", retryable=retryable)


def log_api_failure(method: str, exc: Exception) -> None:
    """Log a failed call that is not raised: loudly when the workspace admin must act."""
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error")
        if error == "missing_scope":
            log.error(
                "Slack %s failed: missing_scope (needs %s; the token has %s) — add the scope "
                "to the Slack app and reinstall it",
                method, exc.response.get("needed"), exc.response.get("provided"),
            )
        elif error == "not_in_channel":
            log.error("Slack %s failed: not_in_channel — invite the bot to the channel", method)
        else:
            log.warning("Slack %s failed: %s", method, error)
    else:
        log.warning("Slack %s failed: %s", method, type(exc).__name__)
