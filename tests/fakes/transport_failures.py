"""Transport failures a local server cannot produce on cue, as aiohttp raises them, for tests
that mock ``ClientSession._request`` with ``aioresponses``.

Two kinds matter to a sender, and the names here say which each one is:

- *before sending* (refused, DNS failure, connect timeout): the request never left, so it
  certainly had no effect;
- *after sending* (reset before or during the answer, a read timeout, an answer cut
  mid-body): the server may well have acted on it.

``aioresponses`` raises ``exception=`` from the request itself, which fits every failure up to
the status line. A failure *mid-body* — the status and part of the body arrived, then the
socket timed out or was reset — it cannot model: it always feeds the whole body and its end.
``cut_body`` is the closest faithful stand-in: a ``CallbackResult`` whose response hands out
the body's first bytes and then raises what aiohttp's payload reader raises there.

Use ``mocked_http()`` rather than ``aioresponses()`` itself: aioresponses 0.7.9 builds its
responses without the ``stream_writer`` that aiohttp 3.14's ``ClientResponse`` requires
(pnuckowski/aioresponses#289, open), so every mocked answer would fail with a ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import aiohttp
import aioresponses.core
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import CallbackResult
from aioresponses import aioresponses as Mocked

HOST_KEY = ConnectionKey(
    host="api.example.test",
    port=443,
    is_ssl=True,
    ssl=True,
    proxy=None,
    proxy_auth=None,
    proxy_headers_hash=None,
)


def refused() -> aiohttp.ClientConnectorError:
    """Nobody listens on the port (the connection was never made)."""
    return aiohttp.ClientConnectorError(HOST_KEY, ConnectionRefusedError(111, "Connect call failed"))


def dns_failure() -> aiohttp.ClientConnectorDNSError:
    """The host name does not resolve (the connection was never made)."""
    return aiohttp.ClientConnectorDNSError(
        HOST_KEY, OSError(-2, "Name or service not known")
    )


def connect_timeout() -> aiohttp.ConnectionTimeoutError:
    """No connection within the connect timeout (nothing was sent)."""
    return aiohttp.ConnectionTimeoutError("Connection timeout to host https://api.example.test")


def disconnected() -> aiohttp.ServerDisconnectedError:
    """The server closed the connection after the request went out, before any answer."""
    return aiohttp.ServerDisconnectedError()


def reset() -> aiohttp.ClientOSError:
    """ECONNRESET after the request went out."""
    return aiohttp.ClientOSError(104, "Connection reset by peer")


def read_timeout() -> aiohttp.SocketTimeoutError:
    """The request went out; no byte of the answer within ``sock_read``."""
    return aiohttp.SocketTimeoutError("Timeout on reading data from socket")


def total_timeout() -> TimeoutError:
    """The call's overall ``ClientTimeout(total=…)`` ran out after the request went out."""
    return TimeoutError()


BEFORE_SENDING: dict[str, Callable[[], Exception]] = {
    "refused": refused,
    "dns failure": dns_failure,
    "connect timeout": connect_timeout,
}
AFTER_SENDING: dict[str, Callable[[], Exception]] = {
    "server disconnected": disconnected,
    "connection reset": reset,
    "read timeout": read_timeout,
    "total timeout": total_timeout,
}


class _RequestSent:
    """The writer of a request already sent: all a ``ClientResponse`` asks of it then."""

    output_size = 0


class Response(aiohttp.ClientResponse):
    """A ``ClientResponse`` aioresponses can build on aiohttp 3.14 (see the module's note)."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _RequestSent())
        super().__init__(method, url, **kwargs)


@contextmanager
def mocked_http() -> Iterator[Mocked]:
    """``aioresponses()`` whose answers are ``Response``s."""
    with patch.object(aioresponses.core, "ClientResponse", Response), Mocked() as mocked:
        yield mocked


class _CutStream:
    """A payload stream that delivers ``head`` and then fails with ``failure``, as aiohttp's
    reader does when the socket times out or is reset mid-body."""

    def __init__(self, head: bytes, failure: BaseException) -> None:
        self._head = head
        self._failure = failure

    # aioresponses feeds the whole body and its end into whatever ``content`` is: ignored,
    # this stream has its own.
    def feed_data(self, data: bytes, size: int = 0) -> None:
        pass

    def feed_eof(self) -> None:
        pass

    def at_eof(self) -> bool:
        return False

    def exception(self) -> BaseException | None:
        return None if self._head else self._failure

    async def readany(self) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        raise self._failure

    async def iter_any(self) -> Any:
        while True:
            yield await self.readany()

    async def read(self, n: int = -1) -> bytes:
        # A whole-body read gives nothing back until the end, which never comes.
        self._head = b""
        raise self._failure


def cut_body(
    head: bytes | str,
    failure: BaseException,
    *,
    status: int = 200,
    content_type: str = "application/json",
    on_request: Callable[..., None] | None = None,
) -> Callable[..., CallbackResult]:
    """An ``aioresponses`` callback: answer ``status`` with ``head`` as the first bytes of the
    body, then fail reading the rest with ``failure``. ``on_request(url, **kwargs)`` sees the
    request first (what the server received)."""
    data = head.encode() if isinstance(head, str) else head

    class CutResponse(Response):
        @property  # type: ignore[override]
        def content(self) -> Any:
            return self._cut

        @content.setter
        def content(self, _reader: Any) -> None:
            self._cut = _CutStream(data, failure)

    def callback(url: Any, **kwargs: Any) -> CallbackResult:
        if on_request is not None:
            on_request(url, **kwargs)
        return CallbackResult(
            status=status, body=b"", content_type=content_type, response_class=CutResponse
        )

    return callback
