"""Where knowledge comes from: files, an Intercom Help Center, a website (sitemap or URL list).

Each source reads its documents into the one document type (``ParsedDocument``) and hands them
to ``bot.knowledge.sync``, which applies them through the one ingestion path and chunker. A
source only reads: it never writes the index, so a source that fails part-way changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.knowledge.documents import ParsedDocument


class SourceError(Exception):
    """A source could not be read completely; the sync applies nothing and reports this."""


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
    ``source`` is what a citation shows — the public URL when there is one.
    """

    location: str
    source: str
    document: ParsedDocument
    etag: str | None = None
    last_modified: str | None = None


@dataclass(slots=True)
class Fetched:
    """Everything a source holds now: documents read afresh, and the locations of known
    documents confirmed unchanged without reading them (an HTTP 304). Known documents in
    neither are gone from the source."""

    documents: list[SourceDocument] = field(default_factory=list)
    unchanged: set[str] = field(default_factory=set)
    requests: int = 0
