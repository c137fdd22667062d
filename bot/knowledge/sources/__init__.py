"""Where knowledge comes from: files, an Intercom Help Center, a website (sitemap or URL list).

Each source reads its documents into the one document type (``ParsedDocument``) and hands them
to ``bot.knowledge.sync``, which applies them through the one ingestion path and chunker. A
source only reads: it never writes the index, so a source that fails part-way changes nothing.

Every request a source sends goes through ``with_retries``: a 429 or a 502/503/504 is tried
again a bounded number of times, never sooner than the server's ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.config import KnowledgeSourceSettings
from bot.knowledge.documents import ParsedDocument
from bot.retry import RemoteError, parse_retry_after, wait_retry_after

T = TypeVar("T")

# Statuses that say "not now" rather than "no": the request is tried again.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# A Retry-After longer than this is not waited for: the sync fails and the next one tries.
MAX_RETRY_AFTER = 300.0


class SourceError(RemoteError):
    """A source could not be read completely; the sync applies nothing and reports this.
    ``retryable`` with ``retry_after``: the server asked to be asked again later."""


def status_error(what: str, status: int, retry_after: str | None) -> SourceError:
    """The error for an HTTP status a source cannot use; retryable for 429 and 502–504, with
    the server's ``Retry-After`` (a wait longer than ``MAX_RETRY_AFTER`` is not retried)."""
    wait = parse_retry_after(retry_after)
    retryable = status in RETRY_STATUSES and (wait is None or wait <= MAX_RETRY_AFTER)
    return SourceError(f"{what}: HTTP {status}", retryable=retryable, retry_after=wait)


async def with_retries(source: KnowledgeSourceSettings, attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt()``, again after a retryable ``SourceError`` — at most ``max_retries`` more
    times, after an exponential backoff but never sooner than the error's ``Retry-After``."""
    backoff = source.retry_backoff_seconds
    async for trying in AsyncRetrying(
        stop=stop_after_attempt(source.max_retries + 1),
        wait=wait_retry_after(wait_exponential_jitter(multiplier=backoff, max=60.0, jitter=backoff)),
        retry=retry_if_exception(lambda e: isinstance(e, SourceError) and e.retryable),
        reraise=True,
    ):
        with trying:
            return await attempt()
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class KnownDocument:
    """What the index holds for one of a source's documents: enough for a conditional GET."""

    id: str
    location: str
    content_hash: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """One document as a source read it.

    ``location`` is unique across sources (it is what the index keys a document by);
    ``source`` is what a citation shows — the public URL when there is one; ``section`` is
    where the source files it (a Help Center article's "Collection › Section"), shown by
    ``kb list``, not searched.
    """

    location: str
    source: str
    document: ParsedDocument
    etag: str | None = None
    last_modified: str | None = None
    section: str | None = None


@dataclass(slots=True)
class Fetched:
    """Everything a source holds now: documents read afresh, and the locations of known
    documents confirmed unchanged without reading them (an HTTP 304). Known documents in
    neither are gone from the source."""

    documents: list[SourceDocument] = field(default_factory=list)
    unchanged: set[str] = field(default_factory=set)
    requests: int = 0
