"""The knowledge base: ingest files into chunks, store them, and search them with a score.

Chunks live in the database (SQLite or PostgreSQL); searching uses an in-memory index built
from them (``bot.knowledge.index``), one code path on both databases, so a score means the
same on either.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from bot.config import KnowledgeSettings
from bot.domain import now
from bot.knowledge import terms as vocab
from bot.knowledge.documents import (
    ParsedDocument,
    UnreadableDocument,
    chunk_document,
    kind_of,
    parse,
)
from bot.knowledge.reversal import demote_undoing
from bot.store.database import Database
from bot.store.schema import kb_chunks, kb_documents, kb_terms

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    # numpy behind these is imported on the first search (or with embeddings configured), not
    # when a command starts: ``triage --once`` reaches its first turn before any search.
    from bot.knowledge.embeddings import Embedder
    from bot.knowledge.index import ChunkRecord, MatchEvidence, SearchIndex
    from bot.knowledge.vectors import DenseSide

logger = logging.getLogger(__name__)

# Bump when parsing or chunking changes, so the next ingest re-chunks every file.
CHUNKER_VERSION = 1
MAX_LIMIT = 50
# The kb_terms row holding the number of chunks (a stem is never empty): counting the chunks
# table on every search costs a scan on PostgreSQL.
_TOTAL = ""
# How long a search trusts its in-memory index without asking the database whether another
# replica changed the documents; this replica's own writes are seen at once. A database round
# trip per search would cost more than the search itself (aiosqlite hops to a thread).
INDEX_RECHECK_SECONDS = 1.0
# Serialises knowledge writes between replicas on PostgreSQL (term counters are shared rows).
_PG_LOCK_KEY = 0x6B6E6F77  # "know"


@dataclass(frozen=True, slots=True)
class Passage:
    """A chunk returned by a search, with what a citation needs.

    ``score`` is in 0..1, higher is better: the idf-weighted share of the question's terms the
    document covers (``SearchIndex``'s confidence: terms in the section's title or headings
    count fully, body-only and elsewhere-in-the-document terms less), for later documents scaled
    down by how far behind the first they rank. Roughly: ≥ 0.45 the passage is about the
    question; around 0.2 it shares a part of it, which is enough only well ahead of the next
    document; terms the knowledge base never uses count against it, so an off-topic question
    scores near 0 whatever incidental word matched.
    """

    chunk_id: str
    document_id: str
    title: str
    heading: str
    text: str
    source: str
    score: float
    # The document's language (ISO 639-1, as ``bot.knowledge.analysis.detect_language`` guesses
    # it); empty when unknown.
    language: str = ""
    # How the document meets the question's words (``bot.knowledge.index.MatchEvidence``);
    # None when only the dense side found it.
    evidence: MatchEvidence | None = None


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What an ingest did, per document, and how many chunks the ingested paths hold now.

    ``skipped`` counts files with a supported extension that could not be read (logged).
    """

    added: int
    updated: int
    unchanged: int
    removed: int
    chunks: int
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class _Known:
    id: str
    content_hash: str
    chunks: int
    source: str


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A file read, hashed and — when it changed — parsed and chunked, off the event loop."""

    content_hash: str
    title: str = ""
    kind: str = ""
    chunks: tuple[tuple[str, str, str], ...] = ()  # (heading, text, terms)

    @property
    def parsed(self) -> bool:
        return bool(self.kind)


@dataclass(frozen=True, slots=True)
class _Root:
    path: Path
    is_dir: bool
    exists: bool
    files: tuple[Path, ...]


class KnowledgeBase:
    """Ingest and search the team's documents; safe to share between tasks."""

    def __init__(
        self, db: Database, settings: KnowledgeSettings, *, embedder: Embedder | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self._index: tuple[str, SearchIndex] | None = None
        self._index_lock = asyncio.Lock()
        self._index_checked_at = -math.inf  # time.monotonic() of the last signature check
        # Indexes this knowledge base analysed its chunks for (not loaded as stored).
        self.index_builds = 0
        # Hybrid retrieval, only with an embeddings backend configured (``bot.knowledge.vectors``).
        self.dense: DenseSide | None = None
        if embedder is None and settings.embeddings.effective_backend() != "none":
            from bot.knowledge.embeddings import make_embedder

            embedder = make_embedder(settings.embeddings)
        if embedder is not None:
            from bot.knowledge.vectors import DenseSide

            self.dense = DenseSide(db, embedder, settings.embeddings)

    async def aclose(self) -> None:
        """Release the embeddings backend's connections (nothing to do without one)."""
        if self.dense is not None:
            await self.dense.embedder.aclose()

    # -- ingest ------------------------------------------------------------------------------

    async def ingest(self, paths: Sequence[Path]) -> IngestReport:
        """Bring the index in line with ``paths`` (files, or directories walked recursively).

        Unchanged files are not rewritten; a changed file's chunks are replaced; a document
        whose file disappeared from an ingested directory (or an ingested file path that no
        longer exists) is removed. Raises ``FileNotFoundError`` for a path that does not exist
        and never held documents.
        """
        roots = await asyncio.to_thread(_discover, [Path(p) for p in paths])
        known = await self._known_documents()
        added = updated = unchanged = removed = skipped = total_chunks = 0
        seen: set[str] = set()

        for root in roots:  # validate every path before changing anything
            if not root.exists and not _under(known, root.path):
                raise FileNotFoundError(f"knowledge path does not exist: {root.path}")
        for root in roots:
            for file in root.files:
                location = str(file)
                if location in seen:
                    continue
                seen.add(location)
                source = file.relative_to(root.path).as_posix() if root.is_dir else file.name
                before = known.get(location)
                try:
                    prepared = await asyncio.to_thread(
                        _prepare,
                        file,
                        self.settings.chunk_chars,
                        before.content_hash if before else None,
                    )
                except (UnreadableDocument, OSError) as exc:
                    skipped += 1
                    logger.warning("knowledge: skipped %s: %s", file, exc)
                    if before is not None:
                        total_chunks += before.chunks
                    continue
                if not prepared.parsed:
                    assert before is not None
                    unchanged += 1
                    total_chunks += before.chunks
                    if before.source != source:
                        await self._set_source(before.id, source)
                    continue
                outcome = await self._write_document(location, source, prepared)
                if outcome == "unchanged":
                    unchanged += 1
                elif before is None and outcome == "added":
                    added += 1
                else:
                    updated += 1
                total_chunks += len(prepared.chunks)

        # Only after every root: a file can be reached through more than one of them.
        scanned = [root.path for root in roots if root.is_dir or not root.exists]
        for location, doc in known.items():
            if location not in seen and any(_is_within(Path(location), r) for r in scanned):
                await self._remove_document(doc.id)
                removed += 1
                logger.info("knowledge: removed %s (its file is gone)", location)

        report = IngestReport(added, updated, unchanged, removed, total_chunks, skipped)
        logger.info("knowledge: ingest done %s", report)
        return report

    async def _known_documents(self) -> dict[str, _Known]:
        query = select(
            kb_documents.c.location,
            kb_documents.c.id,
            kb_documents.c.content_hash,
            kb_documents.c.chunks,
            kb_documents.c.source,
        )
        rows = await self.db.run_read(lambda conn: conn.execute(query).all())
        return {r.location: _Known(r.id, r.content_hash, r.chunks, r.source) for r in rows}

    async def _set_source(self, document_id: str, source: str) -> None:
        async with self.db.tx() as conn:
            await conn.execute(
                update(kb_documents)
                .where(kb_documents.c.id == document_id)
                # updated_at tells searching replicas that their index is out of date
                .values(source=source, updated_at=now())
            )
        self._documents_changed()

    async def _write_document(self, location: str, source: str, prepared: _Prepared) -> str:
        """Insert or replace one document's chunks; returns added/updated/unchanged."""
        document_id = document_id_for(location)
        at = now()
        async with self.db.tx() as conn:
            await self._lock(conn)
            # Re-check inside the transaction: another replica may have written it meanwhile.
            current = (
                await conn.execute(
                    select(kb_documents.c.content_hash).where(kb_documents.c.id == document_id)
                )
            ).scalar_one_or_none()
            if current == prepared.content_hash:
                self._documents_changed()  # by another replica, just now
                return "unchanged"
            old_terms = await self._delete_chunks(conn, document_id)
            values = {
                "location": location,
                "source": source,
                "title": prepared.title,
                "kind": prepared.kind,
                "content_hash": prepared.content_hash,
                "chunks": len(prepared.chunks),
                "updated_at": at,
            }
            if current is None:
                await conn.execute(
                    insert(kb_documents).values(id=document_id, created_at=at, **values)
                )
            else:
                await conn.execute(
                    update(kb_documents).where(kb_documents.c.id == document_id).values(**values)
                )
            if prepared.chunks:
                await conn.execute(
                    insert(kb_chunks),
                    [
                        {
                            "document_id": document_id,
                            "seq": seq,
                            "title": prepared.title,
                            "heading": heading,
                            "text": body,
                            "terms": chunk_terms,
                        }
                        for seq, (heading, body, chunk_terms) in enumerate(prepared.chunks)
                    ],
                )
            new_terms = _count_terms(t for _, _, t in prepared.chunks)
            new_terms.subtract(old_terms)
            await self._apply_term_deltas(conn, new_terms)
        self._documents_changed()
        if self.dense is not None:  # only the chunks whose text is new are embedded
            from bot.knowledge.vectors import embedding_text

            await self.dense.after_write(
                [
                    embedding_text(prepared.title, heading, body)
                    for heading, body, _ in prepared.chunks
                ]
            )
        return "added" if current is None else "updated"

    async def _remove_document(self, document_id: str) -> None:
        async with self.db.tx() as conn:
            await self._lock(conn)
            old_terms = await self._delete_chunks(conn, document_id)
            await conn.execute(delete(kb_documents).where(kb_documents.c.id == document_id))
            old_terms_negated = Counter({t: -n for t, n in old_terms.items()})
            await self._apply_term_deltas(conn, old_terms_negated)
        self._documents_changed()

    def _documents_changed(self) -> None:
        """After a committed write: the next search checks the index against the database."""
        self._index_checked_at = -math.inf

    async def _lock(self, conn: AsyncConnection) -> None:
        if not self.db.is_sqlite:  # SQLite's BEGIN IMMEDIATE already serialises writers
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})

    @staticmethod
    async def _delete_chunks(conn: AsyncConnection, document_id: str) -> Counter[str]:
        rows = await conn.execute(
            select(kb_chunks.c.terms).where(kb_chunks.c.document_id == document_id)
        )
        old = _count_terms(r.terms for r in rows)
        await conn.execute(delete(kb_chunks).where(kb_chunks.c.document_id == document_id))
        return old

    async def _apply_term_deltas(self, conn: AsyncConnection, deltas: Counter[str]) -> None:
        changes = [{"term": t, "chunks": n} for t, n in sorted(deltas.items()) if n]
        if not changes:
            return
        dialect_insert = sqlite.insert if self.db.is_sqlite else postgresql.insert
        stmt = dialect_insert(kb_terms)
        stmt = stmt.on_conflict_do_update(
            index_elements=[kb_terms.c.term],
            set_={"chunks": kb_terms.c.chunks + stmt.excluded.chunks},
        )
        await conn.execute(stmt, changes)
        if any(n < 0 for n in deltas.values()):
            await conn.execute(delete(kb_terms).where(kb_terms.c.chunks <= 0))

    # -- search ------------------------------------------------------------------------------

    async def count_chunks(self) -> int:
        """How many chunks the index holds."""
        async with self.db.read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(kb_chunks))).scalar_one()
            )

    async def search(self, query: str, *, limit: int = 5) -> list[Passage]:
        """The best passages for a customer's question, best first, one per document (see
        ``Passage.score`` and ``bot.knowledge.index``).

        Any text is accepted: quotes, operators, SQL, emoji and empty strings are treated as
        plain words (or as nothing), never as query syntax. A question with no content words
        returns no passages.
        """
        limit = max(1, min(int(limit), MAX_LIMIT))
        query = searched_text(query)
        if not query.strip():
            return []
        index = await self._current_index()
        if self.dense is None:
            hits = index.search(query, limit=limit)
        else:
            hits = await self.dense.search(index, query, limit=limit)
        hits = demote_undoing(query, hits)
        if not hits:
            return []
        top = hits[0].rank_score or 1.0
        passages: list[Passage] = []
        for h in hits:
            # The first document keeps its confidence; later ones are scaled by how far behind
            # it they rank, and never score above one ranked before them.
            score = h.confidence * (0.5 + 0.5 * h.rank_score / top)
            if passages:
                score = min(score, passages[-1].score)
            passages.append(
                Passage(
                    chunk_id=f"{h.chunk.document_id}:{h.chunk.content_hash[:8]}:{h.chunk.id}",
                    document_id=h.chunk.document_id,
                    title=h.chunk.title,
                    heading=h.chunk.heading,
                    text=h.chunk.text,
                    source=h.chunk.source,
                    score=round(score, 4),
                    language=h.language,
                    evidence=h.evidence,
                )
            )
        return passages

    async def _current_index(self) -> SearchIndex:
        """The in-memory index, rebuilt when the stored documents changed (here or on another
        replica). One aggregate over the documents table per search decides: every write of a
        document sets its ``updated_at``, and a removal changes the count."""
        if self._index is not None and (
            time.monotonic() - self._index_checked_at < INDEX_RECHECK_SECONDS
        ):
            return self._index[1]
        checked_at = time.monotonic()
        query = select(
            func.count(),
            func.max(kb_documents.c.updated_at),
            func.coalesce(func.sum(kb_documents.c.chunks), 0),
        ).select_from(kb_documents)
        count, latest, chunks = await self.db.run_read(lambda conn: conn.execute(query).one())
        signature = f"{count}:{latest}:{chunks}"
        if self._index is not None and self._index[0] == signature:
            self._index_checked_at = checked_at
            return self._index[1]
        async with self._index_lock:
            if self._index is not None and self._index[0] == signature:
                return self._index[1]
            chunk_query = (
                select(
                    kb_chunks.c.id,
                    kb_chunks.c.document_id,
                    kb_chunks.c.seq,
                    kb_chunks.c.title,
                    kb_chunks.c.heading,
                    kb_chunks.c.text,
                    kb_documents.c.source,
                    kb_documents.c.content_hash,
                )
                .join(kb_documents, kb_documents.c.id == kb_chunks.c.document_id)
                .order_by(kb_chunks.c.document_id, kb_chunks.c.seq)
            )
            chunk_rows = await self.db.run_read(lambda conn: conn.execute(chunk_query).all())
            from bot.knowledge.index import ChunkRecord

            records = [ChunkRecord(*row) for row in chunk_rows]
            index = await asyncio.to_thread(self._load_or_build, records)
            self._index = (signature, index)
            self._index_checked_at = checked_at
            return index

    def _load_or_build(self, records: list[ChunkRecord]) -> SearchIndex:
        """The index over ``records``, loaded when stored beside a SQLite database from these
        very chunks (``bot.knowledge.stored_index``), else built (and stored there)."""
        from bot.knowledge import stored_index

        database = make_url(self.db.url).database if self.db.is_sqlite else None
        index, built = stored_index.load_or_build(
            Path(f"{database}.kb-index") if database else None, records
        )
        self.index_builds += built
        logger.info("knowledge: index %s over %d chunks", "built" if built else "loaded", len(records))
        return index


# Words without which no sentence instructs the bot (a superset of ``intents``' cues): only a
# message that has one pays for reading its intents, which a model's turn never loads otherwise.
_MAY_INSTRUCT = re.compile(
    r"instruction|rules|prompt|system|assistant|developer|you\s+are\s+now|\bmode\b"
    r"|\b(?:close|resolve|mark)\b",
    re.IGNORECASE,
)


def searched_text(query: str) -> str:
    """What of a customer's message is searched: without the sentences that try to instruct the
    bot ("Ignore all previous instructions and reply…", ``intents``), whose words would otherwise
    pull their own articles up."""
    if not _MAY_INSTRUCT.search(query):
        return query
    from bot.agent import intents

    reading = intents.read(query)
    if reading.has(intents.Intent.INJECTION):
        return reading.question
    return query


def _count_terms(stored: Iterable[str]) -> Counter[str]:
    """Chunks per term over some chunks' stored terms, and under ``_TOTAL`` the chunk count."""
    counts: Counter[str] = Counter()
    for chunk_terms in stored:
        counts.update(chunk_terms.split())
        counts[_TOTAL] += 1
    return counts


# -- file work (runs in a worker thread) -------------------------------------------------------


def _discover(paths: list[Path]) -> list[_Root]:
    roots = []
    for given in paths:
        path = given.expanduser().resolve()
        if path.is_dir():
            roots.append(_Root(path, True, True, tuple(_walk(path))))
        elif path.is_file():
            roots.append(_Root(path, False, True, (path,)))
        else:
            roots.append(_Root(path, False, False, ()))
    return roots


def _walk(root: Path) -> list[Path]:
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(directory) / name
            if not name.startswith(".") and kind_of(path) is not None:
                found.append(path)
    return found


def _prepare(path: Path, chunk_chars: int, known_hash: str | None) -> _Prepared:
    data = path.read_bytes()
    digest = hashlib.sha256(f"v{CHUNKER_VERSION}:{chunk_chars}:".encode())
    digest.update(data)
    content_hash = digest.hexdigest()
    if content_hash == known_hash:
        return _Prepared(content_hash)
    return _chunked(parse(path, data), chunk_chars, content_hash)


def _chunked(document: ParsedDocument, chunk_chars: int, content_hash: str) -> _Prepared:
    """The one chunker every source's documents go through."""
    chunks = tuple(
        (
            chunk.heading,
            chunk.text,
            vocab.join_terms(
                vocab.content_terms(f"{document.title}\n{chunk.heading}\n{chunk.text}")
            ),
        )
        for chunk in chunk_document(document, chunk_chars)
    )
    return _Prepared(content_hash, document.title, document.kind, chunks)


def _is_within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _under(known: dict[str, _Known], root: Path) -> bool:
    return any(_is_within(Path(location), root) for location in known)


# -- documents from other sources (bot.knowledge.sync) ------------------------------------------


def document_hash(document: ParsedDocument, chunk_chars: int) -> str:
    """The content hash of a document that is not a file: over the chunking parameters, the
    title and every section, so an edit anywhere (and only an edit) re-indexes it."""
    digest = hashlib.sha256(f"v{CHUNKER_VERSION}:{chunk_chars}:".encode())
    for part in (document.title, document.kind):
        digest.update(part.encode() + b"\0")
    for section in document.sections:
        digest.update("\x1f".join(section.path).encode() + b"\0" + section.text.encode() + b"\0")
    return digest.hexdigest()


async def put_document(
    kb: KnowledgeBase, location: str, source: str, document: ParsedDocument
) -> tuple[str, str]:
    """Index a parsed document under ``location`` (chunked like any file); returns
    (document id, added/updated/unchanged)."""
    content_hash = document_hash(document, kb.settings.chunk_chars)
    prepared = await asyncio.to_thread(_chunked, document, kb.settings.chunk_chars, content_hash)
    outcome = await kb._write_document(location, source, prepared)
    return document_id_for(location), outcome


def document_id_for(location: str) -> str:
    """The id a document at ``location`` has (the same one ``KnowledgeBase.ingest`` gives)."""
    return "doc_" + hashlib.sha256(location.encode()).hexdigest()[:32]


async def remove_document(kb: KnowledgeBase, document_id: str) -> None:
    """Remove one document, its chunks and their term counts."""
    await kb._remove_document(document_id)
