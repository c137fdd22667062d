"""Retrieval quality and latency: the knowledge base's search against plain BM25 over articles.

Two retrievers, each measured through ``supportbot eval`` (the real turn path with the offline
responder) on the bundled example KB's cases and on the held-out sets (bike sharing, a broadband
provider, an online course platform, a meal-kit service, a pet insurer, a parcel-locker network,
a car-rental firm, an energy supplier, a fitness-club chain, an airline, a tenant portal, a
mobile bank, a food-delivery app, an event-ticketing platform, an online pharmacy, a smart-thermostat
maker, a payroll service, a library's e-lending):

- ``current``: ``bot.knowledge.index.SearchIndex`` — per-language analysis, BM25F with title /
  heading / body weights over documents and sections, typo tolerance, one hit per document;
- ``plain bm25``: BM25 (k1 1.2, b 0.75) over each whole article as one bag of words (English
  stop words and Snowball stemmer, no field weights, no typo tolerance, no language detection);
  the passage is the article's best-scoring section by the same BM25. Its hits get the same
  calibrated confidence as ``current`` so that the responder's decisions compare the ranking,
  not two confidence scales.

With the ``supportbot[embeddings]`` extra installed (all-MiniLM-L6-v2 on the CPU, ``[knowledge.
embeddings] backend = "local"``), two more:

- ``embeddings``: the dense side alone — documents ranked by the cosine of their best chunk,
  scored through ``similarity_floor .. similarity_full``;
- ``hybrid``: what a configured backend gives — keyword and dense rankings fused by a convex
  mix of their normalised scores (``bot.knowledge.vectors``).

Without the extra those rows say "not installed".

Columns: right article first (search recall@1) and in the top 5, and the responder's right
action. Then search latency p50/p95 (``KnowledgeBase.search``, SQLite, steady state, the
question's embedding included) on the synthetic 10,000-chunk help center of
``bench/knowledge_search.py``, the mean CPU per search (``time.process_time``: every thread of
the process, so a busy machine's waits do not count, but a BLAS thread spinning does), with the
time to embed it and to load its vectors.

    python bench/retrieval.py [--chunks 10000] [--queries 300] [--random-vectors]
                              [--skip-dense-latency] [--skip-quality]
                              [--sets LABEL ...] [--retrievers NAME ...] [--vector-cache FILE]

``--sets`` keeps the named case sets: ``example`` (the bundled KB) and the held-out sets' directory
names (``--sets example heldout heldout-isp``), and ``languages/<set>`` for the questions in other
languages to that set's help center;
``--vector-cache`` keeps the local model's vectors of every text it embedded in a file, keyed by
the text, so a second run embeds only what changed (the model's vectors of a text never change).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from knowledge_search import generate, queries
from support import KEYWORD_ONLY

from bot.agent.evaluation import evaluate, load_cases
from bot.app import launcher
from bot.config import BUNDLED_KNOWLEDGE, DatabaseSettings, KnowledgeSettings, Settings
from bot.knowledge import KnowledgeBase, analysis, vectors
from bot.knowledge import index as knowledge_index
from bot.knowledge.embeddings import LOCAL_MODEL, LocalEmbedder, Vectors, local_model_installed
from bot.knowledge.index import UNKNOWN_SHARE, ChunkRecord, Hit, SearchIndex
from bot.knowledge.postings import Postings as _Postings
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.schema import kb_chunks, kb_embeddings

CASE_SETS = [
    ("example KB", ROOT / "examples/eval/example-kb.jsonl", BUNDLED_KNOWLEDGE),
    ("held-out", ROOT / "tests/knowledge/heldout/cases.jsonl", ROOT / "tests/knowledge/heldout/kb"),
    (
        "held-out ISP",
        ROOT / "tests/knowledge/heldout-isp/cases.jsonl",
        ROOT / "tests/knowledge/heldout-isp/kb",
    ),
    (
        "held-out courses",
        ROOT / "tests/knowledge/heldout-courses/cases.jsonl",
        ROOT / "tests/knowledge/heldout-courses/kb",
    ),
    (
        "held-out meals",
        ROOT / "tests/knowledge/heldout-meals/cases.jsonl",
        ROOT / "tests/knowledge/heldout-meals/kb",
    ),
    (
        "held-out pet insurance",
        ROOT / "tests/knowledge/heldout-petinsurance/cases.jsonl",
        ROOT / "tests/knowledge/heldout-petinsurance/kb",
    ),
    (
        "held-out lockers",
        ROOT / "tests/knowledge/heldout-lockers/cases.jsonl",
        ROOT / "tests/knowledge/heldout-lockers/kb",
    ),
    (
        "held-out car rental",
        ROOT / "tests/knowledge/heldout-carrental/cases.jsonl",
        ROOT / "tests/knowledge/heldout-carrental/kb",
    ),
    (
        "held-out energy",
        ROOT / "tests/knowledge/heldout-energy/cases.jsonl",
        ROOT / "tests/knowledge/heldout-energy/kb",
    ),
    (
        "held-out gym",
        ROOT / "tests/knowledge/heldout-gym/cases.jsonl",
        ROOT / "tests/knowledge/heldout-gym/kb",
    ),
    (
        "held-out airline",
        ROOT / "tests/knowledge/heldout-airline/cases.jsonl",
        ROOT / "tests/knowledge/heldout-airline/kb",
    ),
    (
        "held-out tenants",
        ROOT / "tests/knowledge/heldout-tenants/cases.jsonl",
        ROOT / "tests/knowledge/heldout-tenants/kb",
    ),
    (
        "held-out bank",
        ROOT / "tests/knowledge/heldout-bank/cases.jsonl",
        ROOT / "tests/knowledge/heldout-bank/kb",
    ),
    (
        "held-out delivery",
        ROOT / "tests/knowledge/heldout-delivery/cases.jsonl",
        ROOT / "tests/knowledge/heldout-delivery/kb",
    ),
    (
        "held-out ticketing",
        ROOT / "tests/knowledge/heldout-tickets/cases.jsonl",
        ROOT / "tests/knowledge/heldout-tickets/kb",
    ),
    (
        "held-out pharmacy",
        ROOT / "tests/knowledge/heldout-pharmacy/cases.jsonl",
        ROOT / "tests/knowledge/heldout-pharmacy/kb",
    ),
    (
        "held-out thermostat",
        ROOT / "tests/knowledge/heldout-thermostat/cases.jsonl",
        ROOT / "tests/knowledge/heldout-thermostat/kb",
    ),
    (
        "held-out payroll",
        ROOT / "tests/knowledge/heldout-payroll/cases.jsonl",
        ROOT / "tests/knowledge/heldout-payroll/kb",
    ),
    (
        "held-out library",
        ROOT / "tests/knowledge/heldout-library/cases.jsonl",
        ROOT / "tests/knowledge/heldout-library/kb",
    ),
]


# Questions in German, French, Spanish, Italian, Portuguese and Dutch to the English help centers
# above (``tests/knowledge/languages/<set>.jsonl``, three per set, written from English cases
# the way a customer writing in their own language would put them).
CASE_SETS += [
    (f"lang {path.stem.removeprefix('heldout-')}", path, ROOT / "tests/knowledge" / path.stem / "kb")
    for path in sorted((ROOT / "tests/knowledge/languages").glob("*.jsonl"))
]


def _set_name(cases: Path) -> str:
    if cases.parent.name == "languages":
        return f"languages/{cases.stem}"
    return "example" if cases.parent.name == "eval" else cases.parent.name


def _plain_terms(text: str) -> list[str]:
    return [
        analysis.stem(t, "en")
        for t in analysis.tokens(text)
        if len(t) >= 2 and not analysis.is_stop_word(t, "en")
    ]


class PlainBM25Index(SearchIndex):
    """Plain BM25 over whole articles (see the module docstring)."""

    def __init__(self, chunks: Sequence[ChunkRecord]):
        super().__init__(chunks)
        self._plain_documents = _Postings()
        self._plain_sections = _Postings()
        per_document: dict[str, Counter[str]] = {}
        for chunk in self.chunks:
            terms = Counter(_plain_terms(f"{chunk.heading}\n{chunk.text}"))
            self._plain_sections.add(dict(terms))
            article = per_document.setdefault(chunk.document_id, Counter(_plain_terms(chunk.title)))
            article.update(terms)
        for document_id in self.documents:
            self._plain_documents.add(dict(per_document[document_id]))
        self._plain_documents.freeze()
        self._plain_sections.freeze()

    def search(self, text: str, *, limit: int = 5) -> list[Hit]:
        plain = [(t, 1.0) for t in dict.fromkeys(_plain_terms(text))]
        documents = self._plain_documents.score(plain)
        sections = self._plain_sections.score(plain)
        matched = np.flatnonzero(documents > 0.0)
        order = matched[np.lexsort((matched, -documents[matched]))][:limit]
        # The same calibrated confidence as the current index, so only the ranking differs.
        terms = self.query_terms(text)
        known = sum(1 for t in terms if t.known)
        share = UNKNOWN_SHARE if known * 2 > len(terms) else 1.0
        total = sum(t.idf if t.known else t.idf * share / UNKNOWN_SHARE for t in terms) or 1.0
        # And the same match evidence, so the responder decides on the same signals.
        evidence = self._evidence(terms, order.tolist())
        hits = []
        for d, found in zip(order.tolist(), evidence, strict=True):
            start = int(self._document_starts[d])
            end = (
                int(self._document_starts[d + 1])
                if d + 1 < len(self.documents)
                else len(self.chunks)
            )
            chunk_index = start + int(np.argmax(sections[start:end]))
            confidence = self._confidence(terms, total, d, chunk_index)
            hits.append(
                Hit(
                    self.chunks[chunk_index],
                    float(documents[d]),
                    confidence,
                    self.languages[d],
                    found,
                )
            )
        return hits


LOCAL = {"backend": "local"}


async def _dense_only(
    self: vectors.DenseSide, index: SearchIndex, query: str, *, limit: int
) -> list[Hit]:
    """``DenseSide.search`` without its keyword side."""
    dense = await self.current(index)
    vector = await self._question_vector(query)
    ranking, typical = dense.ranking(index, vector, self.settings.similarity_floor)
    return vectors.fuse(index, [], ranking, self.settings, limit=limit, typical=typical)


@dataclass(frozen=True)
class Retriever:
    name: str
    index_class: type[SearchIndex] = SearchIndex
    embeddings: dict[str, str] | None = None
    dense_only: bool = False


@contextmanager
def retriever(chosen: Retriever) -> Iterator[None]:
    """Every knowledge base built meanwhile searches like ``chosen``."""
    original = knowledge_index.SearchIndex
    original_search = vectors.DenseSide.search
    knowledge_index.SearchIndex = chosen.index_class  # type: ignore[misc]
    if chosen.dense_only:
        vectors.DenseSide.search = _dense_only  # type: ignore[method-assign]
    try:
        yield
    finally:
        knowledge_index.SearchIndex = original  # type: ignore[misc]
        vectors.DenseSide.search = original_search  # type: ignore[method-assign]


@contextmanager
def vector_cache(path: Path | None) -> Iterator[None]:
    """The local model's vectors kept in ``path`` across runs (see the module docstring)."""
    if path is None:
        yield
        return
    known: dict[str, Vectors] = {}
    if path.exists():
        with np.load(path) as stored:
            known = {h: stored[h] for h in stored.files}
    original = LocalEmbedder.embed

    async def embed(self: LocalEmbedder, texts: Sequence[str]) -> Vectors:
        hashes = [vectors.text_hash(t) for t in texts]
        missing = list(
            dict.fromkeys(t for t, h in zip(texts, hashes, strict=True) if h not in known)
        )
        if missing:
            for t, vector in zip(missing, await original(self, missing), strict=True):
                known[vectors.text_hash(t)] = vector
        return np.vstack([known[h] for h in hashes]) if hashes else await original(self, texts)

    LocalEmbedder.embed = embed  # type: ignore[method-assign]
    try:
        yield
    finally:
        LocalEmbedder.embed = original  # type: ignore[method-assign]
        np.savez(path, **known)  # type: ignore[arg-type]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


async def quality(
    chosen: Retriever, sets: Sequence[tuple[str, Path, Path]]
) -> list[tuple[str, float, float, float]]:
    rows = []
    settings = Settings.model_validate(
        {"knowledge": {"embeddings": chosen.embeddings}} if chosen.embeddings else {}
    )
    with retriever(chosen):
        for label, cases_path, kb in sets:
            report = await evaluate(settings, load_cases(cases_path), kb=[kb], launch=launcher())
            rows.append(
                (
                    label,
                    report.recall["@1"] or 0.0,
                    report.recall["@5"] or 0.0,
                    report.right_action,
                )
            )
    return rows


@dataclass
class Speed:
    p50: float
    p95: float
    cpu_ms: float  # mean CPU per search, every thread of the process (``time.process_time``)
    ingest_seconds: float
    first_search_seconds: float  # builds the index (and loads the vectors)


async def _random_vectors(db: Database, dimensions: int = 384) -> None:
    """Store a random unit vector for every chunk under the local model's name: what a search
    costs does not depend on what the vectors say, and embedding 10,000 chunks on a busy CPU
    takes over an hour."""
    rng = np.random.default_rng(7)
    async with db.read() as conn:
        rows = (
            await conn.execute(select(kb_chunks.c.title, kb_chunks.c.heading, kb_chunks.c.text))
        ).all()
    hashes = {vectors.text_hash(vectors.embedding_text(*row)) for row in rows}
    matrix = rng.standard_normal((len(hashes), dimensions)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    records = [
        {
            "model": LOCAL_MODEL,
            "text_hash": h,
            "dimensions": dimensions,
            "vector": vector.astype("<f4").tobytes(),
            "created_at": time.time(),
        }
        for h, vector in zip(sorted(hashes), matrix, strict=True)
    ]
    async with db.tx() as conn:
        for start in range(0, len(records), 500):
            await conn.execute(insert(kb_embeddings), records[start : start + 500])


async def latency(
    chosen: Retriever, url: str, corpus: Path, questions: list[str], *, random_vectors: bool
) -> Speed:
    db = Database(DatabaseSettings(url=url))
    try:
        await upgrade(db.engine)
        settings = KnowledgeSettings.model_validate(
            {"chunk_chars": 1200, "embeddings": chosen.embeddings or {"backend": "none"}}
        )
        kb = KnowledgeBase(db, settings)
        with retriever(chosen):
            started = time.perf_counter()
            if random_vectors and chosen.embeddings:
                keyword_only = KnowledgeSettings(chunk_chars=1200, embeddings=KEYWORD_ONLY)
                await KnowledgeBase(db, keyword_only).ingest([corpus])
                await _random_vectors(db)
            else:
                await kb.ingest([corpus])  # with a backend: every chunk embedded here
            ingested = time.perf_counter() - started
            # A fresh knowledge base (another process): its first search builds the index and
            # loads every stored vector.
            kb = KnowledgeBase(db, settings)
            started = time.perf_counter()
            await kb.search(questions[0], limit=5)
            first = time.perf_counter() - started
            for q in questions:  # steady state: the index is built and the pages are warm
                await kb.search(q, limit=5)
            # The question's embedding is cached per text; time fresh ones like a customer's.
            if kb.dense is not None:
                kb.dense._questions.clear()
            timings = []
            cpu_started = time.process_time()
            for q in questions:
                started = time.perf_counter()
                await kb.search(q, limit=5)
                timings.append((time.perf_counter() - started) * 1000)
            cpu_ms = (time.process_time() - cpu_started) * 1000 / len(questions)
            await kb.aclose()
        return Speed(
            statistics.median(timings), _percentile(timings, 0.95), cpu_ms, ingested, first
        )
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--random-vectors",
        action="store_true",
        help="time the dense retrievers over random chunk vectors (questions still embedded by "
        "the model) instead of embedding every chunk",
    )
    parser.add_argument(
        "--skip-dense-latency",
        action="store_true",
        help="time only the keyword retrievers (embedding 10,000 chunks on a CPU takes minutes)",
    )
    parser.add_argument("--skip-quality", action="store_true", help="only the latency table")
    parser.add_argument("--sets", nargs="+", metavar="LABEL", help="only these case sets")
    parser.add_argument("--retrievers", nargs="+", metavar="NAME", help="only these retrievers")
    parser.add_argument("--vector-cache", type=Path, metavar="FILE", help="an .npz file")
    args = parser.parse_args()
    installed = local_model_installed()
    retrievers = [
        Retriever("keyword"),
        Retriever("plain bm25", index_class=PlainBM25Index),
        Retriever("embeddings", embeddings=LOCAL, dense_only=True),
        Retriever("hybrid", embeddings=LOCAL),
    ]
    if args.retrievers:
        retrievers = [r for r in retrievers if r.name in args.retrievers]
    sets = [s for s in CASE_SETS if not args.sets or _set_name(s[1]) in args.sets]
    # Each row is printed as soon as it is measured: the dense rows take minutes on a CPU.
    print(f"{'retriever':<11} {'cases':<16} {'article 1st':>11} {'top 5':>7} {'right action':>12}")
    for r in [] if args.skip_quality else retrievers:
        if r.embeddings is not None and not installed:
            print(f"{r.name:<11} {'all':<16} not installed (pip install 'supportbot[embeddings]')")
            continue
        with vector_cache(args.vector_cache):
            measured = await quality(r, sets)
        for label, first, top5, action in measured:
            print(
                f"{r.name:<11} {label:<16} {first * 100:>10.1f}% {top5 * 100:>6.1f}% "
                f"{action * 100:>11.1f}%",
                flush=True,
            )
    print()
    print(
        f"{'retriever':<11} {'chunks':>7} {'search p50':>10} {'search p95':>10} "
        f"{'CPU/search':>10} {'ingest':>9} {'1st search':>10}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="retrieval-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        vocabulary = generate(corpus, args.chunks)
        questions = [q for q in queries(vocabulary, args.queries * 2) if q.strip()][: args.queries]
        for n, r in enumerate(retrievers):
            if r.embeddings is not None and (not installed or args.skip_dense_latency):
                why = "not installed" if not installed else "skipped"
                print(f"{r.name:<11} {args.chunks:>7} {why:>10}")
                continue
            # The dense retrievers share one database: its chunks are embedded once.
            url = f"sqlite+aiosqlite:///{tmp}/bench{'-dense' if r.embeddings else n}.db"
            if r.embeddings and args.random_vectors:
                url = f"sqlite+aiosqlite:///{tmp}/bench-random-{n}.db"
            s = await latency(r, url, corpus, questions, random_vectors=args.random_vectors)
            print(
                f"{r.name:<11} {args.chunks:>7} {s.p50:>8.2f}ms {s.p95:>8.2f}ms "
                f"{s.cpu_ms:>8.2f}ms {s.ingest_seconds:>8.1f}s {s.first_search_seconds:>9.2f}s",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
