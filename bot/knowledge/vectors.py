"""The dense side of hybrid retrieval: chunk vectors, stored and searched, and rank fusion.

Vectors live in the database with the knowledge base (``kb_embeddings``, one code path on
SQLite and PostgreSQL), keyed by model and a hash of the embedded text: a document re-chunked
after an edit keeps the vectors of its unchanged chunks and only changed text goes to the
model. Searching loads them once per index build into one normalised float32 matrix aligned
with the keyword index's chunks; a question costs one matrix-vector product (10,000 chunks ×
384 dimensions is well under a millisecond), no vector extension in either database.

Keyword and dense rankings of documents are fused by their scores, each on a scale of its own
question: a document's keyword score as a share of the best document's, and its cosine as a
share of the best cosine's height above the floor (below); the fused score is the convex mix
``KEYWORD_WEIGHT × keyword + (1 − KEYWORD_WEIGHT) × dense``. Unlike reciprocal rank fusion,
which sees only ranks, it keeps how far apart two documents are on each side: an article far
closer in meaning outranks one a keyword or two ahead, and a clear keyword lead is not undone by
a dense side that finds several articles about equally close (bench/retrieval.py: right article
first 83.4% → 86.1% in the mean over the eight development sets).
A fused hit's confidence is the larger of the keyword confidence and the cosine read through
``[knowledge.embeddings] similarity_floor .. similarity_full``, so a paraphrase that shares no
word with its article can still be answered, and an off-topic question (nothing above the
floor) gains nothing from the dense side. The floor rises to the question's median similarity
over the documents (the span from it to the full mark is kept at half the configured one at
least): a question in the knowledge base's own domain that no article answers ("the best bike
route to the old town" in a bike-sharing help center) is close to every article alike, and what
counts is how far the best one stands out from the rest.
A question in a language no article is written in is embedded with its support words read in
English beside it (``crosslingual.english_gloss``).
A question that moved on to another ("…thanks! also, …") is embedded twice in one request, whole
and from where it moved on, and searched by the mean of the two vectors (``SETTLED_DENSE_SHARE``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from cachetools import LRUCache
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bot.config import EmbeddingsSettings
from bot.knowledge import analysis, crosslingual, spelling, vocabulary
from bot.knowledge.embeddings import Embedder, EmbeddingError, Vectors
from bot.knowledge.index import ChunkRecord, Hit, SearchIndex
from bot.store.database import Database
from bot.store.schema import kb_embeddings

log = logging.getLogger(__name__)

# The keyword side's share of a document's fused score; the dense side has the rest. Measured
# on the development sets of bench/retrieval.py (right article first): 0.525 loses no set's
# case to reciprocal rank fusion; 0.55 to 0.6 lose one on parcel lockers, 0.5 and below cases
# on the bike-sharing and broadband sets.
KEYWORD_WEIGHT = 0.525
# A question that moved on ("…thanks! also, …") is embedded whole and from where it moved on:
# a chunk's cosine is this much its cosine with the new question, the rest with the whole text.
# The whole text alone lets the settled question outweigh the new one ("why is my bill higher?
# thanks, but I also need to change the card it comes out of" → the bill article); the new
# question alone loses what "it" refers to ("how do I freeze my membership? thanks! also do my
# miles disappear while it's frozen"). The keyword side weighs settled words down the same way
# (``index.SETTLED_WEIGHT``). Development sets of bench/retrieval.py: one case gained (ISP), none
# lost; 0.5 is the plain mean, not fitted.
SETTLED_DENSE_SHARE = 0.5
# How deep each side's ranking goes into the fusion.
FUSION_DEPTH = 30
# Rows per insert or delete statement (SQLite's bound-parameter limit).
_BATCH = 200


def embedding_text(title: str, heading: str, text: str) -> str:
    """What is embedded for a chunk: its title, its heading path and its text."""
    parts = [title]
    if heading and heading != title:
        parts.append(heading)
    parts.append(text)
    return "\n".join(p for p in parts if p)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def chunk_text(chunk: ChunkRecord) -> str:
    return embedding_text(chunk.title, chunk.heading, chunk.text)


class VectorStore:
    """The stored vectors of one model."""

    def __init__(self, db: Database, embedder: Embedder) -> None:
        self.db = db
        self.embedder = embedder

    async def load(self) -> dict[str, Vectors]:
        query = select(kb_embeddings.c.text_hash, kb_embeddings.c.vector).where(
            kb_embeddings.c.model == self.embedder.model
        )
        rows = await self.db.run_read(lambda conn: conn.execute(query).all())
        return {r.text_hash: np.frombuffer(r.vector, dtype="<f4") for r in rows}

    async def ensure(self, texts: Sequence[str], known: set[str] | None = None) -> int:
        """Embed and store the texts that have no vector yet; returns how many were embedded.

        Raises ``EmbeddingError`` (and stores nothing of the failed batch) when the backend
        fails; what was stored before stays.
        """
        wanted = {text_hash(t): t for t in texts}
        if known is None:
            known = await self._stored(list(wanted))
        missing = [(h, t) for h, t in wanted.items() if h not in known]
        if not missing:
            return 0
        await self.embed_and_store(missing)
        log.info("knowledge: embedded %d chunks with %s", len(missing), self.embedder.model)
        return len(missing)

    async def embed_and_store(self, missing: Sequence[tuple[str, str]]) -> None:
        """Embed (hash, text) pairs and store their vectors in one transaction: all or none."""
        vectors = await self.embedder.embed([t for _, t in missing])
        at = time.time()
        rows = [
            {
                "model": self.embedder.model,
                "text_hash": h,
                "dimensions": int(vectors.shape[1]),
                "vector": np.ascontiguousarray(vector, dtype="<f4").tobytes(),
                "created_at": at,
            }
            for (h, _), vector in zip(missing, vectors, strict=True)
        ]
        dialect_insert = sqlite.insert if self.db.is_sqlite else postgresql.insert
        async with self.db.tx() as conn:
            for start in range(0, len(rows), _BATCH):
                stmt = dialect_insert(kb_embeddings).on_conflict_do_nothing()
                await conn.execute(stmt, rows[start : start + _BATCH])

    async def hashes(self) -> set[str]:
        """The text hashes this model has a vector for."""
        query = select(kb_embeddings.c.text_hash).where(
            kb_embeddings.c.model == self.embedder.model
        )
        return await self.db.run_read(lambda conn: set(conn.execute(query).scalars()))

    async def _stored(self, hashes: list[str]) -> set[str]:
        def stored(conn: Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(hashes), _BATCH):
                query = select(kb_embeddings.c.text_hash).where(
                    kb_embeddings.c.model == self.embedder.model,
                    kb_embeddings.c.text_hash.in_(hashes[start : start + _BATCH]),
                )
                found.update(conn.execute(query).scalars())
            return found

        return await self.db.run_read(stored)

    async def prune(self, stale: Sequence[str], *, before: float) -> None:
        """Forget vectors no chunk has any more (stored before ``before``: a replica that read
        an older snapshot must not delete what another just embedded for new chunks)."""
        if not stale:
            return
        async with self.db.tx() as conn:
            for start in range(0, len(stale), _BATCH):
                await conn.execute(
                    delete(kb_embeddings).where(
                        kb_embeddings.c.model == self.embedder.model,
                        kb_embeddings.c.text_hash.in_(stale[start : start + _BATCH]),
                        kb_embeddings.c.created_at < before,
                    )
                )


@dataclass(frozen=True, slots=True)
class DenseIndex:
    """The chunk vectors of one index snapshot; a row of zeros where a chunk has none yet."""

    matrix: Vectors
    present: npt.NDArray[np.bool_]
    complete: bool

    @classmethod
    def build(cls, index: SearchIndex, stored: dict[str, Vectors]) -> DenseIndex:
        hashes = [text_hash(chunk_text(c)) for c in index.chunks]
        dims = next((len(v) for v in stored.values()), 0)
        matrix = np.zeros((len(hashes), dims), dtype=np.float32)
        present = np.zeros(len(hashes), dtype=np.bool_)
        for i, h in enumerate(hashes):
            vector = stored.get(h)
            if vector is not None and len(vector) == dims:
                matrix[i] = vector
                present[i] = True
        return cls(matrix, present, bool(present.all()))

    def ranking(
        self, index: SearchIndex, query: Vectors, floor: float
    ) -> tuple[list[tuple[int, int, float]], float]:
        """(document, best chunk, cosine) for documents whose best chunk passes ``floor``,
        best first; and the median over documents of their best cosine."""
        if not len(self.matrix) or query.shape[-1] != self.matrix.shape[1]:
            return [], floor
        # einsum, not ``@``: numpy hands a matrix-vector product this size to OpenBLAS on every
        # core, and its worker threads spin on after it returns, over the next question's
        # forward pass (on a 2-core machine, the other core) or another process's work: a
        # hybrid search at 10,000 chunks cost 25-26 ms of CPU so, 11 with einsum, whose loop
        # is single-threaded and as fast as one BLAS thread (~1 ms; bench/retrieval.py's CPU
        # column, alternated on a busy machine).
        scores = np.einsum("ij,j->i", self.matrix, query.reshape(-1).astype(np.float32))
        scores[~self.present] = -1.0
        starts = index.document_starts
        best = np.maximum.reduceat(scores, starts)
        typical = float(np.median(best[best > -1.0])) if (best > -1.0).any() else floor
        order = np.argsort(-best, kind="stable")[:FUSION_DEPTH]
        out = []
        for d in order.tolist():
            cosine = float(best[d])
            if cosine <= floor:
                break
            end = int(starts[d + 1]) if d + 1 < len(starts) else len(self.matrix)
            start = int(starts[d])
            out.append((d, start + int(np.argmax(scores[start:end])), cosine))
        return out, typical


def fuse(
    index: SearchIndex,
    keyword: Sequence[Hit],
    dense: Sequence[tuple[int, int, float]],
    settings: EmbeddingsSettings,
    *,
    limit: int,
    typical: float = -1.0,
) -> list[Hit]:
    """One ranking of documents from both sides (see the module docstring).

    A document keeps the keyword side's section when it found one (it knows the heading and
    the steps); otherwise the chunk closest in meaning. ``Hit.rank_score`` becomes the fused
    score (1 for a document first on both sides), so later documents' scores fall off with it.
    """
    floor = max(settings.similarity_floor, typical)
    # A median near or above ``similarity_full`` must not shrink the span to nothing (a cosine
    # just above it scored 1, test_hybrid's in-domain question): half the configured span at
    # least. Keeping the whole span above the risen floor cost pet-insurance and car-rental
    # answers (bench/retrieval.py).
    span = max(
        settings.similarity_full - floor,
        (settings.similarity_full - settings.similarity_floor) / 2,
    )
    fused: dict[str, float] = {}
    hit_of: dict[str, Hit] = {}
    keyword_top = keyword[0].rank_score if keyword and keyword[0].rank_score > 0 else 1.0
    for hit in keyword[:FUSION_DEPTH]:
        key = hit.chunk.document_id
        fused[key] = KEYWORD_WEIGHT * max(0.0, hit.rank_score / keyword_top)
        hit_of[key] = hit
    dense_top = dense[0][2] - floor if dense else 1.0
    for d, chunk_index, cosine in dense:
        chunk = index.chunks[chunk_index]
        key = chunk.document_id
        closeness = (cosine - floor) / dense_top if dense_top > 0 else 0.0
        fused[key] = fused.get(key, 0.0) + (1 - KEYWORD_WEIGHT) * closeness
        confidence = round(min(1.0, max(0.0, (cosine - floor) / span)), 4)
        known = hit_of.get(key)
        if known is None:
            hit_of[key] = Hit(chunk, 0.0, confidence, index.languages[d])
        else:
            hit_of[key] = replace(known, confidence=max(known.confidence, confidence))
    order = sorted(fused, key=lambda key: -fused[key])
    return [replace(hit_of[key], rank_score=fused[key]) for key in order[:limit]]


# After the backend failed, chunks without a vector wait this long for another try (they are
# searched by keywords meanwhile).
EMBED_RETRY_SECONDS = 60.0


class DenseSide:
    """What a ``KnowledgeBase`` with an embeddings backend adds: vectors for new chunk text
    after each write, the matrix for the current index, and the fused search.

    Search is hybrid only over an index whose every chunk has its vector: with part of them,
    documents with vectors would gain a dense score their neighbours cannot have yet, so the
    ranking would say when a chunk was embedded rather than what it says. Until then, keywords.

    Where the vectors come from: by default, inline (a one-off command: ``kb ingest`` embeds
    what it wrote, the first search what is missing). In the daemon a ``VectorBackfill``
    takes that over (``embed_in_background``): writes and searches only wake it, and neither a
    start nor a customer's search waits for the model.
    """

    def __init__(self, db: Database, embedder: Embedder, settings: EmbeddingsSettings) -> None:
        self.embedder = embedder
        self.settings = settings
        self.store = VectorStore(db, embedder)
        # The index the matrix was built for, the ``_generation`` it was loaded at, the matrix.
        self._dense: tuple[SearchIndex, int, DenseIndex] | None = None
        self._tried_at = -math.inf
        self._lock = asyncio.Lock()
        self._questions: LRUCache[str, Vectors] = LRUCache(maxsize=256)
        self._wake_backfill: Callable[[], None] | None = None
        self._generation = 0  # bumped when the background embedder stored vectors

    def embed_in_background(self, wake: Callable[[], None]) -> None:
        """Leave embedding to a background worker, woken by ``wake`` whenever chunks may lack
        a vector; it calls ``vectors_stored`` when it stored some."""
        self._wake_backfill = wake

    def vectors_stored(self) -> None:
        """The background worker stored vectors: the next search reloads the matrix."""
        self._generation += 1

    async def after_write(self, texts: Sequence[str]) -> None:
        """After a document's chunks changed: embed those whose text is new (the rest keep
        their vectors), or wake the background worker to. A failing backend is logged, not
        raised: the document is indexed and searched by keywords, and its vectors are retried
        when the index is next built."""
        if self._wake_backfill is not None:
            self._wake_backfill()
            return
        try:
            await self.store.ensure(texts)
        except EmbeddingError as exc:
            log.warning("knowledge: embedding failed, will retry: %s", exc)

    async def search(self, index: SearchIndex, query: str, *, limit: int) -> list[Hit]:
        """Keyword and dense rankings fused; keywords alone when the question cannot be
        embedded now (the customer is not kept waiting on retries)."""
        keyword = index.search(query, limit=max(limit, FUSION_DEPTH))
        dense = await self.current(index)
        if not dense.complete:  # see the class docstring
            return list(keyword[:limit])
        # Embedded with its typos corrected as the keyword side reads them (``spelling``).
        query = spelling.corrected(index, query)
        lang = analysis.detect_language(query)
        if lang != "en" and lang not in index.language_set:
            # No article is in the customer's language, and an English model reads the question
            # as noise but for its cognates: it is embedded as written and, on a line of its own,
            # with its support words in English (``crosslingual.english_gloss``). The reading
            # alone loses what only the original has (names, English product words in a Swedish
            # question); as written alone, what the table knows.
            query = query + "\n" + crosslingual.english_gloss(query, lang)
        vector = self._questions.get(query)
        if vector is None:
            try:
                vector = await self._question_vector(query)
            except EmbeddingError as exc:
                log.warning("knowledge: question not embedded, keywords only: %s", exc)
                return list(keyword[:limit])
            self._questions[query] = vector
        ranking, typical = dense.ranking(index, vector, self.settings.similarity_floor)
        return fuse(index, keyword, ranking, self.settings, limit=limit, typical=typical)

    async def _question_vector(self, query: str) -> Vectors:
        """The question's vector; for one that moved on to a new question ("…higher than last
        month? thanks, but I also need to change my card", ``vocabulary.settled_end``), the
        mean of the whole text's vector and the new question's (see ``SETTLED_DENSE_SHARE``)."""
        settled_at = vocabulary.settled_end(query)
        if not settled_at:
            vector: Vectors = (await self.embedder.embed_once([query]))[0]
            return vector
        whole, new = await self.embedder.embed_once([query, query[settled_at:]])
        # A dot product is linear in the question's vector: this mix scores every chunk at the
        # same mix of its cosines with the whole text and with the new question.
        mixed: Vectors = (1 - SETTLED_DENSE_SHARE) * whole + SETTLED_DENSE_SHARE * new
        return mixed

    async def current(self, index: SearchIndex) -> DenseIndex:
        """The chunk vectors matching ``index``, loaded once per index build; chunks without a
        vector (a backend that failed at sync, or one configured after the documents came) are
        embedded here, at most every ``EMBED_RETRY_SECONDS`` while the backend keeps failing —
        or, with a background worker, left to it (woken here) and reloaded when it stored."""
        fresh = self._fresh(index)
        if fresh is not None:
            return fresh
        async with self._lock:
            fresh = self._fresh(index)
            if fresh is not None:
                return fresh
            self._tried_at = time.monotonic()
            generation = self._generation
            stored = await self.store.load()
            if self._wake_backfill is None:
                stored = await self._embed_missing(index, stored)
            built = await asyncio.to_thread(DenseIndex.build, index, stored)
            self._dense = (index, generation, built)
            if not built.complete and self._wake_backfill is not None:
                self._wake_backfill()
            return built

    async def _embed_missing(
        self, index: SearchIndex, stored: dict[str, Vectors]
    ) -> dict[str, Vectors]:
        loaded_at = time.time()
        texts = {text_hash(t): t for t in (chunk_text(c) for c in index.chunks)}
        try:
            if await self.store.ensure(list(texts.values()), known=set(stored)):
                stored = await self.store.load()
        except EmbeddingError as exc:
            log.warning("knowledge: embedding failed, searching by keywords: %s", exc)
        await self.store.prune([h for h in stored if h not in texts], before=loaded_at)
        return stored

    def _fresh(self, index: SearchIndex) -> DenseIndex | None:
        if self._dense is None or self._dense[0] is not index:
            return None
        _, generation, dense = self._dense
        if dense.complete:
            return dense
        if self._wake_backfill is not None:
            return dense if generation == self._generation else None
        return dense if time.monotonic() - self._tried_at < EMBED_RETRY_SECONDS else None
