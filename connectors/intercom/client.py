"""The Intercom REST calls this connector makes, through ``python-intercom``'s ``AsyncIntercom``.

The SDK sends no ``Intercom-Version`` (we pin one), retries nothing unless asked (we own the
policy: tenacity, ``Retry-After``, the shared ``RateLimiter``), and its search pager re-sends
page 1 forever (we page by hand with ``starting_after``). Its httpx client is ours: injected
with the configured base URL and timeout, with hooks feeding the limiter, closed on ``close``.

Retries: a request that certainly had no effect (429, a connection never made) or that is safe
to repeat (reads, tagging, state changes) is retried here; a reply or note whose outcome is
unknown (timeout after sending, 5xx) is not — it surfaces as ``IntercomError(unknown_outcome)``
and the caller looks for it among the conversation's parts before sending again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from intercom import (
    AdminReplyConversationRequest,
    AsyncIntercom,
    CreateOrUpdateTagRequest,
    StartingAfterPaging,
)
from intercom.conversations import (
    ConversationsManageRequestBody_Assignment,
    ConversationsManageRequestBody_Close,
    ConversationsManageRequestBody_Open,
    ConversationsManageRequestBody_Snoozed,
)
from intercom.core.api_error import ApiError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity import wait_exponential_jitter

from bot.config import IntercomSettings
from bot.domain import JSON
from connectors.intercom.ratelimit import RateLimiter, retry_after

log = logging.getLogger(__name__)

T = TypeVar("T")


class IntercomError(Exception):
    """A call that failed. ``retryable``: trying again may work; ``unknown_outcome``: it may
    have taken effect (look before resending); ``status``: the HTTP status, if one came back."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        unknown_outcome: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.unknown_outcome = unknown_outcome
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SearchPage:
    conversations: list[JSON]
    next_cursor: str | None


def _as_json(model: Any) -> JSON:
    """SDK models keep unknown fields; ``dict()`` gives back the JSON Intercom sent. Some SDK
    field types disagree with what Intercom sends (``team_assignee_id`` is typed ``str``, the
    API and its spec say integer): the values are kept as sent, without serializer warnings."""
    if model is None:
        return {}
    if isinstance(model, dict):
        return model
    data = model.dict(warnings=False)
    assert isinstance(data, dict)
    return data


class IntercomClient:
    def __init__(self, settings: IntercomSettings):
        if settings.token is None:
            raise ValueError("intercom.token is not set")
        self._settings = settings
        self.limiter = RateLimiter(headroom=settings.rate_limit_headroom)
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            timeout=settings.timeout_seconds,
            event_hooks={"request": [self._before], "response": [self._after]},
        )
        self._last_wait: float | None = None
        token = settings.token.get_secret_value()
        self.sdk = AsyncIntercom(
            base_url=settings.base_url.rstrip("/"),
            token=token,
            headers={"Intercom-Version": settings.api_version, "Accept": "application/json"},
            timeout=settings.timeout_seconds,
            httpx_client=self._http,
        )
        self._backoff = wait_exponential_jitter(
            multiplier=settings.retry_backoff_seconds, max=30.0, jitter=settings.retry_backoff_seconds
        )
        self.requests = 0

    async def close(self) -> None:
        await self._http.aclose()

    async def _before(self, request: httpx.Request) -> None:
        await self.limiter.acquire()
        self.requests += 1

    async def _after(self, response: httpx.Response) -> None:
        self.limiter.observe(response.status_code, response.headers)

    # -- the retry policy -----------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, IntercomError) and exc.retry_after is not None:
            return max(backoff, exc.retry_after)
        return backoff

    async def call(self, what: str, op: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        """Run ``op`` with our retry policy; ``idempotent``: repeating it cannot duplicate an
        effect, so an unknown outcome may be retried too."""

        def retry(exc: BaseException) -> bool:
            if not isinstance(exc, IntercomError) or not exc.retryable:
                return False
            return idempotent or not exc.unknown_outcome

        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(retry),
            reraise=True,
        ):
            with attempt:
                return await self._once(what, op)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await op()
        except ApiError as exc:
            raise _from_api_error(what, exc) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left: certainly no effect.
            raise IntercomError(f"{what}: cannot reach Intercom ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise IntercomError(
                f"{what}: no answer from Intercom ({type(exc).__name__})", unknown_outcome=True
            ) from None

    # -- calls ------------------------------------------------------------------------------

    async def me(self) -> JSON:
        return _as_json(await self.call("GET /me", lambda: self.sdk.admins.identify(), idempotent=True))

    async def find_conversation(self, conversation_id: str) -> JSON:
        return _as_json(
            await self.call(
                f"GET /conversations/{conversation_id}",
                lambda: self.sdk.conversations.find(conversation_id),
                idempotent=True,
            )
        )

    async def reply(self, conversation_id: str, *, admin_id: str, message_type: str, body: str) -> JSON:
        """Post a comment or note; never retried here once it may have arrived."""
        request = AdminReplyConversationRequest(
            message_type=message_type,
            type="admin",
            admin_id=admin_id,
            body=body,
        )
        return _as_json(
            await self.call(
                f"POST /conversations/{conversation_id}/reply ({message_type})",
                lambda: self.sdk.conversations.reply(conversation_id, request=request),
                idempotent=False,
            )
        )

    async def close_conversation(self, conversation_id: str, *, admin_id: str) -> JSON:
        request = ConversationsManageRequestBody_Close(admin_id=admin_id)
        return await self._manage(conversation_id, "close", request)

    async def open_conversation(self, conversation_id: str, *, admin_id: str) -> JSON:
        request = ConversationsManageRequestBody_Open(admin_id=admin_id)
        return await self._manage(conversation_id, "open", request)

    async def snooze_conversation(self, conversation_id: str, *, admin_id: str, until: int) -> JSON:
        request = ConversationsManageRequestBody_Snoozed(admin_id=admin_id, snoozed_until=until)
        return await self._manage(conversation_id, "snooze", request)

    async def assign_conversation(
        self, conversation_id: str, *, admin_id: str, assignee_type: str, assignee_id: str
    ) -> JSON:
        request = ConversationsManageRequestBody_Assignment(
            type=assignee_type,
            admin_id=admin_id,
            assignee_id=assignee_id,
        )
        return await self._manage(conversation_id, "assign", request)

    async def _manage(self, conversation_id: str, what: str, request: Any) -> JSON:
        return _as_json(
            await self.call(
                f"POST /conversations/{conversation_id}/parts ({what})",
                lambda: self.sdk.conversations.manage(conversation_id, request=request),
                idempotent=True,
            )
        )

    async def list_tags(self) -> list[JSON]:
        tags = await self.call("GET /tags", lambda: self.sdk.tags.list(), idempotent=True)
        return [_as_json(tag) for tag in (tags.data or [])]

    async def create_tag(self, name: str) -> JSON:
        request = CreateOrUpdateTagRequest(name=name)
        # Creating a tag that exists returns it: safe to repeat.
        return _as_json(
            await self.call("POST /tags", lambda: self.sdk.tags.create(request=request), idempotent=True)
        )

    async def tag_conversation(self, conversation_id: str, *, tag_id: str, admin_id: str) -> JSON:
        return _as_json(
            await self.call(
                f"POST /conversations/{conversation_id}/tags",
                lambda: self.sdk.tags.tag_conversation(conversation_id, tag_id=tag_id, admin_id=admin_id),
                idempotent=True,
            )
        )

    async def untag_conversation(self, conversation_id: str, *, tag_id: str, admin_id: str) -> JSON:
        return _as_json(
            await self.call(
                f"DELETE /conversations/{conversation_id}/tags/{tag_id}",
                lambda: self.sdk.tags.untag_conversation(conversation_id, tag_id, admin_id=admin_id),
                idempotent=True,
            )
        )

    async def search_conversations(
        self, query: JSON, *, per_page: int, starting_after: str | None
    ) -> SearchPage:
        """One page of a search; the caller follows ``next_cursor`` (never the SDK pager)."""
        pagination = StartingAfterPaging(per_page=per_page, starting_after=starting_after)
        pager = await self.call(
            "POST /conversations/search",
            # A plain dict: the SDK's typed filters serialise booleans as 1.
            lambda: self.sdk.conversations.search(query=query, pagination=pagination),
            idempotent=True,
        )
        response = _as_json(pager.response)
        pages = response.get("pages") or {}
        next_page = pages.get("next") or {}
        cursor = next_page.get("starting_after") if isinstance(next_page, dict) else None
        return SearchPage(
            conversations=list(response.get("conversations") or []),
            next_cursor=cursor or None,
        )

    async def find_contact(self, contact_id: str) -> JSON:
        return _as_json(
            await self.call(
                f"GET /contacts/{contact_id}",
                lambda: self.sdk.contacts.find(contact_id),
                idempotent=True,
            )
        )

    async def contact_companies(self, contact_id: str) -> list[JSON]:
        pager = await self.call(
            f"GET /contacts/{contact_id}/companies",
            lambda: self.sdk.contacts.list_attached_companies(contact_id),
            idempotent=True,
        )
        # The 2.14 schema names the list ``companies``, its own example (and older API
        # versions) ``data``: read whichever came.
        response = _as_json(pager.response)
        companies = response.get("companies") or response.get("data") or []
        return [company for company in companies if isinstance(company, dict)]


def _from_api_error(what: str, exc: ApiError) -> IntercomError:
    status = exc.status_code
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    detail = _error_detail(exc.body)
    message = f"{what}: Intercom answered {status}" + (f" ({detail})" if detail else "")
    if status == 429:
        wait = retry_after(headers)
        if wait is None:
            reset = headers.get("x-ratelimit-reset")
            try:
                wait = max(0.0, float(reset) - time.time()) if reset else None
            except ValueError:
                wait = None
        return IntercomError(message, status=status, retry_after=wait if wait is not None else 1.0)
    if status is not None and status >= 500:
        return IntercomError(
            message, status=status, unknown_outcome=True, retry_after=retry_after(headers)
        )
    if status in (408, 409):
        return IntercomError(message, status=status, unknown_outcome=True)
    return IntercomError(message, status=status, retryable=False)


def _error_detail(body: Any) -> str:
    """Intercom's error codes and messages, without echoing anything else of the body."""
    data = _as_json(body) if hasattr(body, "dict") else body
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list):
            return "; ".join(
                f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                for e in errors
                if isinstance(e, dict)
            )[:500]
    if isinstance(data, str):
        return data[:200]
    return ""
