"""The HTTP side the remote providers share: one client setup, status codes and transport
failures turned into ``ProviderError``, ``Retry-After``, and a streaming frame reader that
understands both SSE (``event:``/``data:``) and newline-delimited JSON.

Nothing here ever puts an API key into a message: every error text built from a server's
answer passes through ``scrub``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from bot.domain import JSON, Usage
from bot.providers.base import ProviderError

log = logging.getLogger(__name__)

# Statuses worth another try: rate limited, timed out, conflicts with a run still settling,
# and every server-side failure.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
MAX_ERROR_TEXT = 300


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced, for messages and logs."""
    if secret:
        text = text.replace(secret, "***")
    return text


def build_client(
    *,
    base_url: str,
    api_key: str | None,
    timeout_seconds: float,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """An ``AsyncClient`` for one provider: bearer auth, JSON, and per-phase timeouts.

    The total deadline of a call is enforced by ``resilience.ResilientProvider``; these
    timeouts only bound a single phase, so a dead connection is noticed and retried early.
    """
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if api_key:
        all_headers["Authorization"] = f"Bearer {api_key}"
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/") + "/",
        headers=all_headers,
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0)),
        follow_redirects=False,
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _error_detail(body: str) -> str:
    """The human part of an error body: OpenAI ``{"error": {"message"}}``, gRPC-gateway
    ``{"message"}``, or the raw text."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            message = str(error.get("message") or "")
            return f"{message} ({code})" if code else message
        if isinstance(error, str):
            return error
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return body.strip()


class ProviderHTTPError(ProviderError):
    """A ``ProviderError`` for an unsuccessful HTTP answer; ``status`` lets a provider react
    to specific answers (Ingram's 409 for a thread locked by a forgotten paused run)."""

    def __init__(
        self, message: str, *, status: int, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status = status


def error_from_status(
    provider: str, status: int, body: str, headers: httpx.Headers, *, secret: str | None
) -> ProviderHTTPError:
    """A ``ProviderError`` for an HTTP answer that is not a success."""
    detail = scrub(_error_detail(body), secret)[:MAX_ERROR_TEXT]
    retry_after = parse_retry_after(headers.get("retry-after"))
    message = f"{provider}: HTTP {status}" + (f": {detail}" if detail else "")
    return ProviderHTTPError(
        message, status=status, retryable=status in RETRYABLE_STATUSES, retry_after=retry_after
    )


async def raise_for_status(provider: str, response: httpx.Response, *, secret: str | None) -> None:
    """Raise the ``ProviderError`` an unsuccessful (possibly streamed) response deserves."""
    if response.is_success:
        return
    try:
        body = (await response.aread()).decode("utf-8", "replace")
    except httpx.HTTPError:
        body = ""
    raise error_from_status(provider, response.status_code, body, response.headers, secret=secret)


def error_from_transport(
    provider: str, exc: httpx.HTTPError, *, secret: str | None
) -> ProviderError:
    """A retryable ``ProviderError`` for a connection, protocol or timeout failure."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        text = "timed out"
    elif isinstance(exc, httpx.RemoteProtocolError):
        text = "connection cut mid-response"
    elif isinstance(exc, httpx.ConnectError):
        text = "cannot connect"
    else:
        text = "transport failure"
    detail = scrub(str(exc), secret)[:MAX_ERROR_TEXT]
    retryable = isinstance(exc, httpx.TransportError)
    return ProviderError(f"{provider}: {text} ({kind}: {detail})", retryable=retryable)


def decode_json(provider: str, body: bytes | str, *, secret: str | None) -> Any:
    """Parse a JSON body or raise a retryable ``ProviderError`` (a garbled answer)."""
    try:
        return json.loads(body)
    except ValueError as exc:
        text = body if isinstance(body, str) else body.decode("utf-8", "replace")
        snippet = scrub(text, secret)[:80]
        raise ProviderError(
            f"{provider}: answer is not JSON ({exc}): {snippet!r}", retryable=True
        ) from None


@dataclass(frozen=True, slots=True)
class Frame:
    """One streamed frame: the SSE ``event:`` name (None for NDJSON or unnamed events) and
    the raw ``data:`` text."""

    event: str | None
    data: str


async def iter_frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """The frames of a streamed body, SSE or NDJSON, as they arrive.

    SSE: ``event:``/``data:`` lines, multi-line data joined with newlines, comments and
    ``id:``/``retry:`` ignored, a blank line ends a frame. NDJSON: a line that starts with
    ``{`` or ``[`` outside an SSE frame is a frame by itself.
    """
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line.strip():
            for frame in _frames_of(event, data):
                yield frame
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, sep, value = line.partition(":")
        if sep and field in ("data", "event", "id", "retry"):
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value.strip() or None
            continue
        stripped = line.strip()
        if not data and stripped[:1] in ("{", "["):
            yield Frame(event, stripped)
            event = None
            continue
        log.debug("ignoring a stream line that is neither SSE nor JSON: %.80r", line)
    for frame in _frames_of(event, data):
        yield frame


def _frames_of(event: str | None, data: list[str]) -> list[Frame]:
    """One frame from ``data:`` lines — or one per line when a server forgot the blank lines
    between frames (each line is then a whole JSON document, and together they are not)."""
    if not data:
        return []
    joined = "\n".join(data)
    if (
        len(data) > 1
        and not _is_json(joined)
        and all(_is_json(d) or d.strip() == "[DONE]" for d in data)
    ):
        return [Frame(event, d) for d in data]
    return [Frame(event, joined)]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def usage_from(data: Any) -> Usage:
    """Token usage from OpenAI (``prompt_tokens``) or Responses-style (``input_tokens``) keys."""
    if not isinstance(data, dict):
        return Usage()

    def number(*keys: str) -> int:
        for key in keys:
            value = data.get(key)
            if isinstance(value, (int, float)):
                return int(value)
        return 0

    return Usage(
        input_tokens=number("prompt_tokens", "input_tokens"),
        output_tokens=number("completion_tokens", "output_tokens"),
    )


def parse_arguments(raw: Any) -> tuple[JSON | None, str | None]:
    """Tool-call arguments as an object, or ``(None, why)`` when they are not valid JSON.

    Empty arguments mean "no arguments"; an object already decoded is taken as is; a JSON
    string that itself holds an object (double-encoded by some servers) is unwrapped.
    """
    if raw is None:
        return {}, None
    if isinstance(raw, dict):
        return raw, None
    if not isinstance(raw, str):
        return None, f"tool arguments must be a JSON object, got {type(raw).__name__}"
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return None, f"tool arguments are not valid JSON: {exc}"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if not isinstance(value, dict):
        return None, f"tool arguments must be a JSON object, got {type(value).__name__}"
    return value, None


def raw_arguments(value: Any) -> str:
    """The arguments as the text a model would have written them."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)
