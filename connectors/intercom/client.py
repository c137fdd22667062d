"""The Intercom REST calls this connector makes: request bodies built from ``python-intercom``'s
own request types, sent with aiohttp, answers read as the JSON Intercom sent.

Why not ``AsyncIntercom`` itself: every answer went through the SDK's model construction and
back to a dict (``construct_type`` + ``dict()``, about 4 ms of CPU for a small conversation)
and every request through httpx (another 2 ms); a triage sweep makes about five calls per
conversation. The SDK's request models still say what a body holds (``reply``, ``manage``,
``tags``), and the fake Intercom validates every request against the official OpenAPI. They are
imported with the first such request, not with the connector: a sweep lists and reads before
its first turn, and they cost about a fifth of a second of CPU to import.

The policy is ours as before: we pin ``Intercom-Version``; a shared ``RateLimiter`` sees every
request and response; search pages go by ``starting_after`` (never a pager).

Retries: a request that certainly had no effect (429, a connection never made) or that is safe
to repeat (reads, tagging, state changes) is retried here; a reply or note whose outcome is
unknown (timeout after sending, 5xx) is not — it surfaces as ``IntercomError(unknown_outcome)``
and the caller looks for it among the conversation's parts before sending again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from cachetools import TTLCache
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.config import IntercomSettings
from bot.domain import JSON
from bot.retry import RemoteError, parse_retry_after, wait_retry_after
from connectors.intercom.model import Conversation
from connectors.intercom.ratelimit import RateLimiter

if TYPE_CHECKING:
    from intercom.core.pydantic_utilities import UniversalBaseModel

log = logging.getLogger(__name__)

# How long a fetched conversation's customer is known (``customer_of``): a sweep's turn looks
# its customer up a second or so after the sweep fetched the conversation, and asking again
# cost a GET in every such turn.
CUSTOMER_KNOWN_SECONDS = 60.0
CUSTOMERS_KNOWN = 10_000


class IntercomError(RemoteError):
    """A call that failed. ``retryable`` (the default): trying again may work;
    ``unknown_outcome``: it may have taken effect (look before resending); ``status``: the HTTP
    status, if one came back."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        unknown_outcome: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status = status
        self.unknown_outcome = unknown_outcome


@dataclass(frozen=True, slots=True)
class SearchPage:
    conversations: list[JSON]
    next_cursor: str | None


class IntercomClient:
    def __init__(self, settings: IntercomSettings):
        if settings.token is None:
            raise ValueError("intercom.token is not set")
        self._settings = settings
        self._base_url = settings.base_url.rstrip("/") + "/"
        self.limiter = RateLimiter(headroom=settings.rate_limit_headroom)
        # conversation id → its customer's contact id, as last fetched.
        self._customers: TTLCache[str, str] = TTLCache(CUSTOMERS_KNOWN, CUSTOMER_KNOWN_SECONDS)
        timeout = settings.timeout_seconds
        self._http = aiohttp.ClientSession(
            headers={
                "Authorization": f"Bearer {settings.token.get_secret_value()}",
                "Intercom-Version": settings.api_version,
                "Accept": "application/json",
            },
            # Each phase on its own clock, as the SDK's httpx client had it; no overall limit.
            timeout=aiohttp.ClientTimeout(
                total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
            ),
        )
        # Never sooner than a 429's or 5xx's Retry-After.
        self._wait = wait_retry_after(
            wait_exponential_jitter(
                multiplier=settings.retry_backoff_seconds,
                max=30.0,
                jitter=settings.retry_backoff_seconds,
            )
        )

    async def close(self) -> None:
        await self._http.close()

    # -- the retry policy -----------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: JSON | None = None,
        idempotent: bool,
    ) -> Any:
        """Send one request with our retry policy and return the JSON answer; ``idempotent``:
        repeating it cannot duplicate an effect, so an unknown outcome may be retried too."""
        what = f"{method} /{path}"

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
                return await self._once(what, method, path, body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, what: str, method: str, path: str, body: JSON | None) -> Any:
        await self.limiter.acquire()
        try:
            async with self._http.request(method, self._base_url + path, json=body) as response:
                self.limiter.observe(response.status, response.headers)
                data = await response.read()
                status = response.status
                headers = {k.lower(): v for k, v in response.headers.items()}
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The request never left: certainly no effect.
            raise IntercomError(f"{what}: cannot reach Intercom ({type(exc).__name__})") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IntercomError(
                f"{what}: no answer from Intercom ({type(exc).__name__})", unknown_outcome=True
            ) from None
        if status >= 400:
            raise _from_status(what, status, headers, _decoded(data))
        return _decoded(data) if data.strip() else {}

    # -- calls ------------------------------------------------------------------------------

    async def me(self) -> JSON:
        return _object(await self.call("GET", "me", idempotent=True))

    async def find_conversation(self, conversation_id: str) -> JSON:
        found = _object(
            await self.call("GET", f"conversations/{conversation_id}", idempotent=True)
        )
        customer = Conversation.from_json(found).customer_id if found.get("id") else None
        if customer:
            self._customers[conversation_id] = customer
        return found

    async def customer_of(self, conversation_id: str) -> str | None:
        """The contact id of the conversation's customer: as fetched within
        ``CUSTOMER_KNOWN_SECONDS``, else fetched now."""
        known = self._customers.get(conversation_id)
        if known:
            return known
        await self.find_conversation(conversation_id)
        return self._customers.get(conversation_id)

    async def reply(self, conversation_id: str, *, admin_id: str, message_type: str, body: str) -> JSON:
        """Post a comment or note; never retried here once it may have arrived."""
        from intercom import AdminReplyConversationRequest

        request = AdminReplyConversationRequest(
            message_type=message_type,
            type="admin",
            admin_id=admin_id,
            body=body,
        )
        return _object(
            await self.call(
                "POST",
                f"conversations/{conversation_id}/reply",
                body=request.dict(),
                idempotent=False,
            )
        )

    async def close_conversation(self, conversation_id: str, *, admin_id: str) -> JSON:
        from intercom.conversations import ConversationsManageRequestBody_Close

        request = ConversationsManageRequestBody_Close(admin_id=admin_id)
        return await self._manage(conversation_id, request)

    async def open_conversation(self, conversation_id: str, *, admin_id: str) -> JSON:
        from intercom.conversations import ConversationsManageRequestBody_Open

        request = ConversationsManageRequestBody_Open(admin_id=admin_id)
        return await self._manage(conversation_id, request)

    async def snooze_conversation(self, conversation_id: str, *, admin_id: str, until: int) -> JSON:
        from intercom.conversations import ConversationsManageRequestBody_Snoozed

        request = ConversationsManageRequestBody_Snoozed(admin_id=admin_id, snoozed_until=until)
        return await self._manage(conversation_id, request)

    async def assign_conversation(
        self, conversation_id: str, *, admin_id: str, assignee_type: str, assignee_id: str
    ) -> JSON:
        from intercom.conversations import ConversationsManageRequestBody_Assignment

        request = ConversationsManageRequestBody_Assignment(
            type=assignee_type,
            admin_id=admin_id,
            assignee_id=assignee_id,
        )
        return await self._manage(conversation_id, request)

    async def _manage(self, conversation_id: str, request: UniversalBaseModel) -> JSON:
        return _object(
            await self.call(
                "POST",
                f"conversations/{conversation_id}/parts",
                body=request.dict(),
                idempotent=True,
            )
        )

    async def list_tags(self) -> list[JSON]:
        tags = _object(await self.call("GET", "tags", idempotent=True))
        return [tag for tag in tags.get("data") or [] if isinstance(tag, dict)]

    async def create_tag(self, name: str) -> JSON:
        from intercom import CreateOrUpdateTagRequest

        request = CreateOrUpdateTagRequest(name=name)
        # Creating a tag that exists returns it: safe to repeat.
        return _object(await self.call("POST", "tags", body=request.dict(), idempotent=True))

    async def tag_conversation(self, conversation_id: str, *, tag_id: str, admin_id: str) -> JSON:
        return _object(
            await self.call(
                "POST",
                f"conversations/{conversation_id}/tags",
                body={"id": tag_id, "admin_id": admin_id},
                idempotent=True,
            )
        )

    async def untag_conversation(self, conversation_id: str, *, tag_id: str, admin_id: str) -> JSON:
        return _object(
            await self.call(
                "DELETE",
                f"conversations/{conversation_id}/tags/{tag_id}",
                body={"admin_id": admin_id},
                idempotent=True,
            )
        )

    async def search_conversations(
        self, query: JSON, *, per_page: int, starting_after: str | None
    ) -> SearchPage:
        """One page of a search; the caller follows ``next_cursor``."""
        # Plain dicts, as ``StartingAfterPaging(...).dict()`` would give (the SDK's typed filters
        # serialise booleans as 1): a sweep lists conversations before its first turn, and
        # the SDK's request types cost a fifth of a second of CPU to import.
        pagination = {"per_page": per_page, "starting_after": starting_after}
        response = _object(
            await self.call(
                "POST",
                "conversations/search",
                body={"query": query, "pagination": pagination},
                idempotent=True,
            )
        )
        pages = response.get("pages") or {}
        next_page = pages.get("next") or {}
        cursor = next_page.get("starting_after") if isinstance(next_page, dict) else None
        return SearchPage(
            conversations=list(response.get("conversations") or []),
            next_cursor=cursor or None,
        )

    async def find_contact(self, contact_id: str) -> JSON:
        return _object(await self.call("GET", f"contacts/{contact_id}", idempotent=True))

    async def contact_companies(self, contact_id: str) -> list[JSON]:
        response = _object(
            await self.call("GET", f"contacts/{contact_id}/companies", idempotent=True)
        )
        # The 2.14 schema names the list ``companies``, its own example (and older API
        # versions) ``data``: read whichever came.
        companies = response.get("companies") or response.get("data") or []
        return [company for company in companies if isinstance(company, dict)]


def _decoded(data: bytes) -> Any:
    """The JSON of an answer, or its text when it is not JSON (some error pages)."""
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def _object(data: Any) -> JSON:
    return data if isinstance(data, dict) else {}


def _from_status(what: str, status: int, headers: dict[str, str], body: Any) -> IntercomError:
    detail = _error_detail(body)
    message = f"{what}: Intercom answered {status}" + (f" ({detail})" if detail else "")
    if status == 429:
        wait = parse_retry_after(headers.get("retry-after"))
        if wait is None:
            reset = headers.get("x-ratelimit-reset")
            try:
                wait = max(0.0, float(reset) - time.time()) if reset else None
            except ValueError:
                wait = None
        return IntercomError(message, status=status, retry_after=wait if wait is not None else 1.0)
    if status >= 500:
        wait = parse_retry_after(headers.get("retry-after"))
        return IntercomError(message, status=status, unknown_outcome=True, retry_after=wait)
    if status in (408, 409):
        return IntercomError(message, status=status, unknown_outcome=True)
    return IntercomError(message, status=status, retryable=False)


def _error_detail(body: Any) -> str:
    """Intercom's error codes and messages, without echoing anything else of the body."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            return "; ".join(
                f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                for e in errors
                if isinstance(e, dict)
            )[:500]
    if isinstance(body, str):
        return body[:200]
    return ""
