"""Keeping the knowledge base in line with its sources, and managing its documents.

A sync reads a source completely first (``bot.knowledge.sources``) and only then applies what
changed: new documents added, changed ones (by content hash) re-indexed, unchanged ones left
alone (no parsing or chunking of what the hash says is the same), and documents the source no
longer has removed. A source that fails part-way applies nothing: the previous index keeps
serving and the report carries the error. Files go through ``KnowledgeBase.ingest`` — the same
parser, chunker and writer every other source's documents go through (``base.put_document``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import or_, select, update

from bot.config import IntercomSettings, KnowledgeSourceSettings, Settings
from bot.knowledge.base import KnowledgeBase, document_hash, put_document, remove_document
from bot.knowledge.sources import Fetched, KnownDocument, SourceDocument, SourceError
from bot.store.schema import kb_chunks, kb_documents

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one source's sync did (documents), or the error that made it apply nothing."""

    source: str
    kind: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    requests: int = 0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """One indexed document as ``kb list`` and the operator API show it."""

    id: str
    source: str | None  # the ``[[knowledge.sources]]`` name; None for ``kb ingest`` files
    title: str
    citation: str
    url: str | None
    kind: str
    chunks: int
    updated_at: float
    section: str | None = None  # where the source files it ("Collection › Section")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class _Readable(Protocol):
    async def fetch(self, known: dict[str, KnownDocument]) -> Fetched: ...


class KnowledgeSync:
    """Syncs the configured sources into one knowledge base; one per process, kept between
    syncs (a website source remembers its robots.txt and sitemaps to ask for them
    conditionally). Syncs of one source never overlap within the process."""

    def __init__(self, kb: KnowledgeBase, settings: Settings):
        self.kb = kb
        self._sources = {s.name: s for s in settings.knowledge.all_sources()}
        self._intercom = settings.intercom
        self._readers: dict[str, _Readable] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def sources(self) -> list[KnowledgeSourceSettings]:
        return list(self._sources.values())

    async def sync(self, name: str | None = None) -> list[SyncReport]:
        """Sync one source (``name``; ``KeyError`` if none has it) or all of them, in order."""
        if name is not None and name not in self._sources:
            raise KeyError(name)
        names = [name] if name is not None else list(self._sources)
        return [await self.sync_source(n) for n in names]

    async def sync_source(self, name: str) -> SyncReport:
        source = self._sources[name]
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            try:
                if source.kind == "files":
                    report = await self._sync_files(source)
                else:
                    report = await self._sync_fetched(source)
            except (SourceError, FileNotFoundError) as exc:
                log.error("knowledge %s: sync failed, the index is unchanged: %s", name, exc)
                return SyncReport(name, source.kind, error=str(exc))
        log.info("knowledge %s: synced %s", name, report)
        return report

    async def _sync_files(self, source: KnowledgeSourceSettings) -> SyncReport:
        ingested = await self.kb.ingest(source.paths)
        await self._claim_files(source)
        return SyncReport(
            source.name,
            source.kind,
            added=ingested.added,
            updated=ingested.updated,
            removed=ingested.removed,
            unchanged=ingested.unchanged,
        )

    async def _claim_files(self, source: KnowledgeSourceSettings) -> None:
        """Name the source on the documents its paths hold (``ingest`` knows only paths)."""
        roots = [Path(p).expanduser().resolve() for p in source.paths]
        query = select(kb_documents.c.id, kb_documents.c.location).where(
            or_(kb_documents.c.origin.is_(None), kb_documents.c.origin != source.name)
        )
        rows = await self.kb.db.run_read(lambda conn: conn.execute(query).all())
        ids = [
            r.id
            for r in rows
            if not r.location.startswith(("site:", "intercom:"))
            and any(Path(r.location).is_relative_to(root) for root in roots)
        ]
        if ids:
            async with self.kb.db.tx() as conn:
                await conn.execute(
                    update(kb_documents).where(kb_documents.c.id.in_(ids)).values(
                        origin=source.name
                    )
                )

    async def _sync_fetched(self, source: KnowledgeSourceSettings) -> SyncReport:
        known = await self._known(source.name)
        fetched = await self._reader(source).fetch(known)  # may raise: nothing applied yet
        added = updated = unchanged = removed = 0
        present = set(fetched.unchanged)
        for item in fetched.documents:
            present.add(item.location)
            before = known.get(item.location)
            content_hash = document_hash(item.document, self.kb.settings.chunk_chars)
            if before is not None and before.content_hash == content_hash:
                unchanged += 1  # the same content: no chunking, no index writes
                document_id = before.id
            else:
                document_id, outcome = await put_document(
                    self.kb, item.location, item.source, item.document
                )
                if outcome == "added":
                    added += 1
                elif outcome == "updated":
                    updated += 1
                else:
                    unchanged += 1
            await self._mark(document_id, source.name, item)
        unchanged += len(fetched.unchanged)
        for location, doc in known.items():
            if location not in present:
                await remove_document(self.kb, doc.id)
                removed += 1
                log.info("knowledge %s: removed %s (gone from the source)", source.name, location)
        return SyncReport(
            source.name, source.kind, added, updated, removed, unchanged, fetched.requests
        )

    def _reader(self, source: KnowledgeSourceSettings) -> _Readable:
        reader = self._readers.get(source.name)
        if reader is None:
            reader = _build_reader(source, self._intercom)
            self._readers[source.name] = reader
        return reader

    async def _known(self, origin: str) -> dict[str, KnownDocument]:
        query = select(
            kb_documents.c.id,
            kb_documents.c.location,
            kb_documents.c.content_hash,
            kb_documents.c.etag,
            kb_documents.c.last_modified,
        ).where(kb_documents.c.origin == origin)
        async with self.kb.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return {
            r.location: KnownDocument(r.id, r.location, r.content_hash, r.etag, r.last_modified)
            for r in rows
        }

    async def _mark(self, document_id: str, origin: str, item: SourceDocument) -> None:
        """What the source says about a document besides its content: its validators, and
        where it is filed (a collection renamed changes no content hash)."""
        async with self.kb.db.tx() as conn:
            await conn.execute(
                update(kb_documents)
                .where(kb_documents.c.id == document_id)
                .values(
                    origin=origin,
                    etag=item.etag,
                    last_modified=item.last_modified,
                    section=item.section,
                )
            )


def _build_reader(source: KnowledgeSourceSettings, intercom: IntercomSettings) -> _Readable:
    from bot.knowledge.sources.intercom import HelpCenterSource
    from bot.knowledge.sources.sitemap import WebsiteSource

    if source.kind == "intercom":
        return HelpCenterSource(source, intercom)
    if source.kind in ("sitemap", "urls"):
        return WebsiteSource(source)
    raise ValueError(f"no reader for knowledge sources of kind {source.kind!r}")


# -- managing documents -----------------------------------------------------------------------


def _info(row: Any) -> DocumentInfo:
    citation = str(row.source)
    return DocumentInfo(
        id=row.id,
        source=row.origin,
        title=row.title,
        citation=citation,
        url=citation if citation.startswith(("http://", "https://")) else None,
        kind=row.kind,
        chunks=int(row.chunks),
        updated_at=float(row.updated_at),
        section=row.section,
    )


_INFO_COLUMNS = (
    kb_documents.c.id,
    kb_documents.c.origin,
    kb_documents.c.title,
    kb_documents.c.source,
    kb_documents.c.kind,
    kb_documents.c.chunks,
    kb_documents.c.updated_at,
    kb_documents.c.section,
)


async def list_documents(kb: KnowledgeBase, *, source: str | None = None) -> list[DocumentInfo]:
    """Every indexed document (of one source), by source then title."""
    query = select(*_INFO_COLUMNS).order_by(
        kb_documents.c.origin, kb_documents.c.title, kb_documents.c.id
    )
    if source is not None:
        query = query.where(kb_documents.c.origin == source)
    async with kb.db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [_info(r) for r in rows]


async def find_document(kb: KnowledgeBase, ref: str) -> DocumentInfo | None:
    """A document by its id, its citation (a URL or a relative path) or its location."""
    query = select(*_INFO_COLUMNS).where(
        or_(
            kb_documents.c.id == ref,
            kb_documents.c.source == ref,
            kb_documents.c.location == ref,
        )
    ).order_by(kb_documents.c.id).limit(2)
    async with kb.db.read() as conn:
        rows = (await conn.execute(query)).all()
    if len(rows) > 1:
        raise LookupError(f"{ref!r} names more than one document; use its id")
    return _info(rows[0]) if rows else None


async def document_chunks(kb: KnowledgeBase, document_id: str) -> list[tuple[str, str]]:
    """A document's chunks in order, as (heading, text)."""
    query = (
        select(kb_chunks.c.heading, kb_chunks.c.text)
        .where(kb_chunks.c.document_id == document_id)
        .order_by(kb_chunks.c.seq)
    )
    async with kb.db.read() as conn:
        return [(r.heading, r.text) for r in (await conn.execute(query)).all()]


async def delete_document(kb: KnowledgeBase, ref: str) -> DocumentInfo | None:
    """Remove a document (by id, citation or location); None when there is no such document.

    A document a source still holds comes back at that source's next sync: remove it there.
    """
    info = await find_document(kb, ref)
    if info is not None:
        await remove_document(kb, info.id)
        log.info("knowledge: removed document %s (%s)", info.id, info.citation)
    return info


class SyncFailed(Exception):
    """A scheduled sync read its source incompletely and applied nothing."""


def scheduled_sync(sync: KnowledgeSync, name: str) -> Callable[[str], Awaitable[SyncReport]]:
    """The job a source's schedule runs (``bot.scheduler``): one sync; a failed one raises, so
    the tick's record carries the error."""

    async def sweep(tick: str) -> SyncReport:
        report = await sync.sync_source(name)
        if report.error is not None:
            raise SyncFailed(report.error)
        return report

    return sweep


def reports_json(reports: Sequence[SyncReport]) -> dict[str, Any]:
    return {"sources": [r.as_json() for r in reports]}
