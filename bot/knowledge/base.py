"""The knowledge base: ingest files into chunks, index them, and search them with a score.

One code path for SQLite (FTS5, bm25) and PostgreSQL (``tsvector``, ``ts_rank_cd``): the
database's full-text engine picks candidates, then every candidate is scored in Python against
the question's content words (see ``Passage.score``), so a confidence threshold means the same
on both databases.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.config import KnowledgeSettings
from bot.domain import now
from bot.knowledge import terms as vocab
from bot.knowledge.documents import (
    HEADING_SEPARATOR,
    ParsedDocument,
    UnreadableDocument,
    chunk_document,
    kind_of,
    parse,
)
from bot.store.database import Database
from bot.store.schema import kb_chunks, kb_documents, kb_terms

logger = logging.getLogger(__name__)

# Bump when parsing or chunking changes, so the next ingest re-chunks every file.
CHUNKER_VERSION = 1
MAX_LIMIT = 50
# A question's first distinct content words that are searched; keeps pasted walls of text cheap.
MAX_QUERY_WORDS = 32
# How many chunks the words sent to the full-text index may match, by the term statistics.
CANDIDATE_BUDGET = 1000
# The kb_terms row holding the number of chunks (a stem is never empty): counting the chunks
# table on every search costs a scan on PostgreSQL.
_TOTAL = ""
# Serialises knowledge writes between replicas on PostgreSQL (term counters are shared rows).
_PG_LOCK_KEY = 0x6B6E6F77  # "know"

# Weights of the score's parts; see ``Passage.score``.
_COVERAGE_WEIGHT = 0.60
_RANK_WEIGHT = 0.15
_PATH_WEIGHT = 0.10  # words in the title or any heading of the path
_LEAF_WEIGHT = 0.15  # words in the passage's own (deepest) heading


@dataclass(frozen=True, slots=True)
class Passage:
    """A chunk returned by a search, with what a citation needs.

    ``score`` is in 0..1, higher is better. It is mostly *coverage*: the share of the question's
    content words (stop words dropped, stemmed, each weighted by how rare it is in the knowledge
    base, idf) that the passage contains, worth up to 0.75; the full-text rank relative to the best
    candidate scales that part by 0.8..1. Covered words that also sit in the title or heading path
    add up to 0.10, and in the passage's own (deepest) heading up to 0.15. Roughly: ≥ 0.6 the
    passage is about the question; 0.35–0.6 it covers the important half of it; below 0.35 it
    shares only incidental words (a sensible "don't answer" threshold). Words the knowledge base
    never uses weigh the most, so "the weather on mars" scores near 0 even if "on" matched.
    """

    chunk_id: str
    document_id: str
    title: str
    heading: str
    text: str
    source: str
    score: float


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

    def __init__(self, db: Database, settings: KnowledgeSettings) -> None:
        self.db = db
        self.settings = settings

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
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return {r.location: _Known(r.id, r.content_hash, r.chunks, r.source) for r in rows}

    async def _set_source(self, document_id: str, source: str) -> None:
        async with self.db.tx() as conn:
            await conn.execute(
                update(kb_documents).where(kb_documents.c.id == document_id).values(source=source)
            )

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
        return "added" if current is None else "updated"

    async def _remove_document(self, document_id: str) -> None:
        async with self.db.tx() as conn:
            await self._lock(conn)
            old_terms = await self._delete_chunks(conn, document_id)
            await conn.execute(delete(kb_documents).where(kb_documents.c.id == document_id))
            old_terms_negated = Counter({t: -n for t, n in old_terms.items()})
            await self._apply_term_deltas(conn, old_terms_negated)

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
        """The best passages for a customer's question, best first (see ``Passage.score``).

        Any text is accepted: quotes, operators, SQL, emoji and empty strings are treated as
        plain words (or as nothing), never as query syntax. A question with no content words
        returns no passages.
        """
        limit = max(1, min(int(limit), MAX_LIMIT))
        query_words = vocab.query_words(query)[:MAX_QUERY_WORDS]
        if not query_words:
            return []
        stems = {w: vocab.stem(w) for w in query_words}
        query_terms = list(dict.fromkeys(stems.values()))
        candidates = max(limit * 4, 20)

        def work(conn: Connection) -> tuple[dict[str, int], int, Sequence[Any]]:
            """Term statistics, the chunk total and the candidate chunks, in one snapshot."""
            stats = conn.execute(
                select(kb_terms.c.term, kb_terms.c.chunks).where(
                    kb_terms.c.term.in_([*query_terms, _TOTAL])
                )
            )
            frequencies = {r.term: int(r.chunks) for r in stats}
            total_chunks = frequencies.pop(_TOTAL, None)
            if total_chunks is None:  # an index written before the total was kept
                total_chunks = int(
                    conn.execute(select(func.count()).select_from(kb_chunks)).scalar_one()
                )
            if total_chunks <= 0:
                return frequencies, total_chunks, []
            df = {w: frequencies.get(stems[w], 0) for w in query_words}
            words, all_required = _candidate_words(sorted(query_words, key=df.__getitem__), df)
            rows = self._candidates(conn, words, all_required, candidates)
            if not rows and all_required:  # the rare words never meet: the rarest alone
                rows = self._candidates(conn, words[:1], False, candidates)
            return frequencies, total_chunks, rows

        frequencies, total_chunks, rows = await self.db.run_read(work)
        if not rows:
            return []
        weights = {t: _idf(frequencies.get(t, 0), total_chunks) for t in query_terms}
        return _score(rows, weights)[:limit]

    def _candidates(
        self, conn: Connection, words: list[str], all_required: bool, k: int
    ) -> Sequence[Any]:
        """Top ``k`` chunks by full-text rank containing any (or all) of ``words``.

        The words come from ``terms.query_words``: letters and digits only, so quoting them
        is enough to keep every one a plain term for FTS5 and ``websearch_to_tsquery``.
        """
        if self.db.is_sqlite:
            joiner = " AND " if all_required else " OR "
            match = joiner.join('"' + w.replace('"', '""') + '"' for w in words)
            return conn.execute(_SQLITE_SEARCH, {"match": match, "k": k}).all()
        joiner = " " if all_required else " or "
        tsquery = joiner.join(words)
        return conn.execute(_POSTGRES_SEARCH, {"query": tsquery, "k": k}).all()


def _candidate_words(by_rarity: list[str], df: dict[str, int]) -> tuple[list[str], bool]:
    """Which words to send to the full-text index, and whether all of them must match.

    Ranking every chunk that holds a very common word costs time (PostgreSQL re-reads each
    matching ``tsvector``) and buys little: such a word barely moves the score. So the rarest
    words go first while the chunks they match fit a budget; when even the rarest word that the
    knowledge base uses is too common, its (up to three) rarest words must all appear. Words the
    statistics have never seen cost nothing and always go (the index's stemmer may still know
    them). Dropped words still count in the score.
    """
    unseen = [w for w in by_rarity if df[w] == 0]
    seen = [w for w in by_rarity if df[w] > 0]
    if seen and df[seen[0]] > CANDIDATE_BUDGET and len(seen) > 1:
        return seen[:3], True
    chosen = list(unseen)
    expected = 0
    for word in seen:
        if expected and expected + df[word] > CANDIDATE_BUDGET:
            break
        chosen.append(word)
        expected += df[word]
    return chosen, False


# The candidate queries: the same columns in the same order on both databases. ``rank`` is
# positive, higher is better.
_SQLITE_SEARCH = text(
    """
    SELECT c.id, c.document_id, c.title, c.heading, c.text, c.terms, d.source, d.content_hash,
           hits.rank
    FROM (
        SELECT rowid AS chunk_rowid, -bm25(kb_chunks_fts, 3.0, 1.0) AS rank
        FROM kb_chunks_fts
        WHERE kb_chunks_fts MATCH :match
        ORDER BY bm25(kb_chunks_fts, 3.0, 1.0)
        LIMIT :k
    ) AS hits
    JOIN kb_chunks AS c ON c.id = hits.chunk_rowid
    JOIN kb_documents AS d ON d.id = c.document_id
    ORDER BY hits.rank DESC
    """
)

_POSTGRES_SEARCH = text(
    """
    SELECT c.id, c.document_id, c.title, c.heading, c.text, c.terms, d.source, d.content_hash,
           ts_rank_cd(c.search_vector, q.query) AS rank
    FROM kb_chunks AS c
    JOIN kb_documents AS d ON d.id = c.document_id
    CROSS JOIN websearch_to_tsquery('english'::regconfig, :query) AS q(query)
    WHERE c.search_vector @@ q.query
    ORDER BY rank DESC
    LIMIT :k
    """
)


def _idf(chunks_with_term: int, total_chunks: int) -> float:
    """BM25's smoothed inverse document frequency: rare words weigh more, ubiquitous ≈ 0."""
    n = min(chunks_with_term, total_chunks)
    return math.log(1.0 + (total_chunks - n + 0.5) / (n + 0.5))


def _score(rows: Sequence[Any], weights: dict[str, float]) -> list[Passage]:
    total = sum(weights.values()) or 1.0
    best_rank = max((float(r.rank) for r in rows), default=0.0)
    scored: list[tuple[float, float, Passage]] = []
    for row in rows:
        chunk_terms = f" {row.terms} "  # substring tests beat building a set of ~150 terms
        *parents, leaf = row.heading.split(HEADING_SEPARATOR)
        leaf_terms = _heading_terms(leaf)
        path_terms = leaf_terms | _heading_terms(HEADING_SEPARATOR.join([row.title, *parents]))
        coverage = sum(w for t, w in weights.items() if f" {t} " in chunk_terms) / total
        in_path = sum(w for t, w in weights.items() if t in path_terms) / total
        in_leaf = sum(w for t, w in weights.items() if t in leaf_terms) / total
        rank = float(row.rank)
        relative_rank = rank / best_rank if best_rank > 0 else 0.0
        score = (
            coverage * (_COVERAGE_WEIGHT + _RANK_WEIGHT * relative_rank)
            + _PATH_WEIGHT * in_path
            + _LEAF_WEIGHT * in_leaf
        )
        passage = Passage(
            chunk_id=f"{row.document_id}:{row.content_hash[:8]}:{row.id}",
            document_id=row.document_id,
            title=row.title,
            heading=row.heading,
            text=row.text,
            source=row.source,
            score=round(min(1.0, max(0.0, score)), 4),
        )
        scored.append((passage.score, rank, passage))
    scored.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [p for _, _, p in scored]


@functools.lru_cache(maxsize=8192)
def _heading_terms(heading: str) -> frozenset[str]:
    # Headings repeat across searches; tokenising them once is most of the scoring cost.
    return frozenset(vocab.content_terms(heading))


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
