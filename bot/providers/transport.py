"""The HTTP side the remote providers share: one client per provider (``ProviderHTTP``, over
aiohttp), status codes and transport failures turned into ``ProviderError``, ``Retry-After``,
and a streaming frame reader that understands both SSE (``event:``/``data:``) and
newline-delimited JSON.

Nothing here ever puts an API key into a message: every error text built from a server's
answer or a transport failure passes through ``scrub``.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from bot.domain import JSON, Usage
from bot.providers.base import ProviderError
from bot.retry import parse_retry_after

log = logging.getLogger(__name__)

# Statuses worth another try: rate limited, timed out, conflicts with a run still settling,
# and every server-side failure.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
MAX_ERROR_TEXT = 300
# Answers that name a request the server will never accept, whatever its status says:
# llama-cpp-python refuses to stream a call with ``tool_choice: "auto"`` (as a 500 or as an
# error inside a 200). Retrying those repeats the same failure, so they are not retryable.
DETERMINISTIC_ERROR_TEXTS = ("streaming tool choice is not supported",)
# A connection that takes longer than this (or than the call's timeout) is retried.
MAX_CONNECT_SECONDS = 10.0
# How long an idle connection is kept for the next call (what httpx kept them for before).
KEEPALIVE_SECONDS = 5.0
# Connections open at once per provider, across hosts (httpx's default limit before).
MAX_CONNECTIONS = 100
# What a request can fail with below HTTP: aiohttp's errors (its timeouts among them) and
# asyncio's timeout.
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced, for messages and logs."""
    if secret:
        text = text.replace(secret, "***")
    return text


# -- the client ----------------------------------------------------------------------------------


class ProviderHTTP:
    """One provider's HTTP client: bearer auth, JSON, per-phase timeouts, no redirects.

    Paths are joined onto ``base_url`` as text (``https://host/v1`` + ``chat/completions`` is
    ``https://host/v1/chat/completions``), never resolved as relative references. A status
    outside 2xx is raised as ``ProviderHTTPError``, a transport failure as a retryable
    ``ProviderError``. The aiohttp session is made on first use, inside the running loop, and
    closed by ``aclose``.

    The total deadline of a call is enforced by ``resilience.ResilientProvider``; these
    timeouts only bound a single phase, so a dead connection is noticed and retried early.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        api_key: str | None,
        timeout_seconds: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/") + "/"
        all_headers = CIMultiDict({"Content-Type": "application/json", **(headers or {})})
        if api_key:
            all_headers["Authorization"] = f"Bearer {api_key}"
        self.headers = CIMultiDictProxy(all_headers)
        self._secret = api_key
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            # ``connect`` also covers waiting for a free connection in the pool.
            connect=timeout_seconds,
            sock_connect=min(timeout_seconds, MAX_CONNECT_SECONDS),
            sock_read=timeout_seconds,
        )
        # aiohttp's ``trust_env`` would look the proxy (and ~/.netrc) up in a worker thread
        # on every request, about 0.4 ms of CPU each; the host never changes, so once here.
        self._proxy = proxy_from_env(URL(self.base_url))
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def url(self, path: str) -> URL:
        """The URL of ``path`` under ``base_url``."""
        return URL(self.base_url + path.lstrip("/"))

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: JSON | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> HTTPAnswer:
        """Send one request and read the whole answer."""
        try:
            response = await self._send(method, path, json=json, params=params)
            try:
                body = await response.read()
            finally:
                response.release()
        except TRANSPORT_ERRORS as exc:
            raise error_from_transport(self.provider, exc, secret=self._secret) from None
        if not 200 <= response.status < 300:
            raise self._status_error(response, body)
        return HTTPAnswer(status=response.status, headers=response.headers, body=body)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        json: JSON | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[HTTPStream]:
        """Send one request and hand over its answer once the headers are in; read the body
        with ``HTTPStream.lines`` inside the ``async with``."""
        try:
            response = await self._send(method, path, json=json, headers=headers)
        except TRANSPORT_ERRORS as exc:
            raise error_from_transport(self.provider, exc, secret=self._secret) from None
        try:
            if not 200 <= response.status < 300:
                try:
                    body = await response.read()
                except TRANSPORT_ERRORS:
                    body = b""
                raise self._status_error(response, body)
            # Only the request and the reads map errors: what the caller does inside the
            # ``async with`` (a delta sink may well use aiohttp itself) is no transport
            # failure of this provider.
            yield HTTPStream(response, provider=self.provider, secret=self._secret)
        finally:
            # Back to the pool when the body was read to its end, closed otherwise.
            response.release()

    async def aclose(self) -> None:
        """Close the session and its connections; the client cannot be used afterwards."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: JSON | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        return await self._open_session().request(
            method,
            self.url(path),
            data=None if json is None else _dump_json(json),
            params=params,
            headers=headers,
            allow_redirects=False,
            proxy=self._proxy,
        )

    def _open_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError(f"the HTTP client of {self.provider} is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(
                    limit=MAX_CONNECTIONS, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
                ),
            )
        return self._session

    def _status_error(self, response: aiohttp.ClientResponse, body: bytes) -> ProviderHTTPError:
        return error_from_status(
            self.provider,
            response.status,
            body.decode("utf-8", "replace"),
            response.headers,
            secret=self._secret,
        )


@dataclass(frozen=True, slots=True)
class HTTPAnswer:
    """A successful answer, read whole."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class HTTPStream:
    """A successful answer whose body is still arriving."""

    def __init__(
        self, response: aiohttp.ClientResponse, *, provider: str, secret: str | None
    ) -> None:
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        self._content = response.content
        self._provider = provider
        self._secret = secret

    async def lines(self) -> AsyncIterator[str]:
        """The body's lines as they arrive, without their line ends.

        Not ``async for line in response.content``: aiohttp's ``readline`` fails on a line
        longer than its buffer (a big tool-call argument, a whole message snapshot).
        """
        splitter = LineSplitter()
        while True:
            # ``readany`` is what ``iter_any`` awaits: whatever has arrived, b"" at the end.
            try:
                chunk = await self._content.readany()
            except TRANSPORT_ERRORS as exc:
                raise error_from_transport(self._provider, exc, secret=self._secret) from None
            if not chunk:
                break
            for line in splitter.feed(chunk):
                yield line
        for line in splitter.flush():
            yield line


def proxy_from_env(url: URL) -> URL | None:
    """The proxy the environment names for ``url``: ``HTTPS_PROXY``, ``HTTP_PROXY`` or
    ``ALL_PROXY``, unless ``NO_PROXY`` exempts its host (httpx read the same variables when
    its client was made). Credentials in it go to the proxy as ``Proxy-Authorization``."""
    if url.host is None or urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    named = proxies.get(url.scheme) or proxies.get("all")
    if not named:
        return None
    return URL(named if "://" in named else f"http://{named}")


def _dump_json(value: JSON) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


_LINE_END = re.compile(r"\r\n|\r|\n")


class LineSplitter:
    r"""Bytes in as they arrive, whole lines of text out.

    UTF-8 is decoded incrementally, so a character split between two chunks comes out whole
    (undecodable bytes become U+FFFD). Lines end at ``\n``, ``\r\n`` or a lone ``\r``, the
    line ends SSE allows; ``flush`` gives a last line that had none. Only each new chunk is
    searched for line ends, so a long line arriving in many small chunks costs linear time.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending: list[str] = []
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[str]:
        """The lines ``chunk`` completes."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._after_cr:
            # The previous chunk ended in "\r": a "\n" opening this one belongs to that end.
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\n" not in text and "\r" not in text:
            self._pending.append(text)
            return []
        lines = _LINE_END.split(text)
        self._after_cr = text[-1] == "\r"
        rest = lines.pop()
        if self._pending:
            self._pending.append(lines[0])
            lines[0] = "".join(self._pending)
            self._pending.clear()
        if rest:
            self._pending.append(rest)
        return lines

    def flush(self) -> list[str]:
        """The last line when the body did not end with a line end."""
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._pending.append(tail)
        line = "".join(self._pending)
        self._pending.clear()
        return [line] if line else []


# -- errors --------------------------------------------------------------------------------------


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
    provider: str, status: int, body: str, headers: Mapping[str, str], *, secret: str | None
) -> ProviderHTTPError:
    """A ``ProviderError`` for an HTTP answer that is not a success."""
    detail = scrub(_error_detail(body), secret)[:MAX_ERROR_TEXT]
    retry_after = parse_retry_after(headers.get("retry-after"))
    message = f"{provider}: HTTP {status}" + (f": {detail}" if detail else "")
    retryable = status in RETRYABLE_STATUSES and not is_deterministic(detail)
    return ProviderHTTPError(message, status=status, retryable=retryable, retry_after=retry_after)


def is_deterministic(text: str) -> bool:
    """Whether an error text names a failure that every retry would meet again."""
    lowered = text.lower()
    return any(known in lowered for known in DETERMINISTIC_ERROR_TEXTS)


class ProviderTransportError(ProviderError):
    """A retryable ``ProviderError`` for a failure below HTTP (connection, protocol, timeout):
    lets a provider that keeps server-side state tell a broken connection from a bad answer."""


def error_from_transport(
    provider: str, exc: aiohttp.ClientError | TimeoutError, *, secret: str | None
) -> ProviderTransportError:
    """A retryable ``ProviderError`` for a connection, protocol or timeout failure."""
    kind = type(exc).__name__
    # aiohttp's own timeouts (ServerTimeoutError and its kinds) are TimeoutErrors too.
    if isinstance(exc, TimeoutError):
        text = "timed out"
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        text = "connection cut mid-response"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        text = "cannot connect"
    else:
        text = "transport failure"
    detail = scrub(str(exc), secret)[:MAX_ERROR_TEXT]
    return ProviderTransportError(f"{provider}: {text} ({kind}: {detail})", retryable=True)


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


async def iter_frames(lines: AsyncIterable[str]) -> AsyncIterator[Frame]:
    """The frames of a streamed body's ``lines``, SSE or NDJSON, as they arrive.

    SSE: ``event:``/``data:`` lines, multi-line data joined with newlines, comments and
    ``id:``/``retry:`` ignored, a blank line ends a frame. NDJSON: a line that starts with
    ``{`` or ``[`` outside an SSE frame is a frame by itself.
    """
    event: str | None = None
    data: list[str] = []
    async for line in lines:
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
