"""Retrieval quality and latency: the knowledge base's search against plain BM25 over articles.

Two retrievers, each measured through ``supportbot eval`` (the real turn path with the offline
responder) on the bundled example KB's cases and on the held-out bike-sharing cases:

- ``current``: ``bot.knowledge.index.SearchIndex`` — per-language analysis, BM25F with title /
  heading / body weights over documents and sections, typo tolerance, one hit per document;
- ``plain bm25``: BM25 (k1 1.2, b 0.75) over each whole article as one bag of words (English
  stop words and Snowball stemmer, no field weights, no typo tolerance, no language detection);
  the passage is the article's best-scoring section by the same BM25. Its hits get the same
  calibrated confidence as ``current`` so that the responder's decisions compare the ranking,
  not two confidence scales.

Columns: right article first (search recall@1) and in the top 5, and the responder's right
action. Then search latency p50/p95 (``KnowledgeBase.search``, SQLite, steady state) on the
synthetic 10,000-chunk help center of ``bench/knowledge_search.py``.

    python bench/retrieval.py [--chunks 10000] [--queries 300]
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from knowledge_search import generate, queries

from bot.agent.evaluation import evaluate, load_cases
from bot.app import launcher
from bot.config import BUNDLED_KNOWLEDGE, DatabaseSettings, KnowledgeSettings, Settings
from bot.knowledge import KnowledgeBase, analysis
from bot.knowledge import base as knowledge_base
from bot.knowledge.index import UNKNOWN_SHARE, ChunkRecord, Hit, SearchIndex, _Postings
from bot.store.database import Database
from bot.store.migrate import upgrade

CASE_SETS = [
    ("example KB", ROOT / "examples/eval/example-kb.jsonl", BUNDLED_KNOWLEDGE),
    ("held-out", ROOT / "tests/knowledge/heldout/cases.jsonl", ROOT / "tests/knowledge/heldout/kb"),
]


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
        hits = []
        for d in order.tolist():
            start = int(self._document_starts[d])
            end = (
                int(self._document_starts[d + 1])
                if d + 1 < len(self.documents)
                else len(self.chunks)
            )
            chunk_index = start + int(np.argmax(sections[start:end]))
            confidence = self._confidence(terms, total, d, chunk_index)
            hits.append(
                Hit(self.chunks[chunk_index], float(documents[d]), confidence, self.languages[d])
            )
        return hits


@contextmanager
def retriever(index_class: type[SearchIndex]) -> Iterator[None]:
    """Every knowledge base built meanwhile searches with ``index_class``."""
    original = knowledge_base.SearchIndex
    knowledge_base.SearchIndex = index_class  # type: ignore[misc]
    try:
        yield
    finally:
        knowledge_base.SearchIndex = original  # type: ignore[misc]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


async def quality(index_class: type[SearchIndex]) -> list[tuple[str, float, float, float]]:
    rows = []
    settings = Settings.model_validate({})
    with retriever(index_class):
        for label, cases_path, kb in CASE_SETS:
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


async def latency(
    index_class: type[SearchIndex], url: str, corpus: Path, questions: list[str]
) -> tuple[float, float]:
    db = Database(DatabaseSettings(url=url))
    try:
        await upgrade(db.engine)
        kb = KnowledgeBase(db, KnowledgeSettings(chunk_chars=1200))
        with retriever(index_class):
            await kb.ingest([corpus])
            for q in questions:  # steady state: the index is built and the pages are warm
                await kb.search(q, limit=5)
            timings = []
            for q in questions:
                started = time.perf_counter()
                await kb.search(q, limit=5)
                timings.append((time.perf_counter() - started) * 1000)
        return statistics.median(timings), _percentile(timings, 0.95)
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    retrievers: list[tuple[str, type[SearchIndex]]] = [
        ("current", SearchIndex),
        ("plain bm25", PlainBM25Index),
    ]
    table = {name: await quality(cls) for name, cls in retrievers}
    speed = {}
    with tempfile.TemporaryDirectory(prefix="retrieval-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        vocabulary = generate(corpus, args.chunks)
        questions = [q for q in queries(vocabulary, args.queries * 2) if q.strip()][: args.queries]
        for n, (name, cls) in enumerate(retrievers):
            url = f"sqlite+aiosqlite:///{tmp}/bench{n}.db"
            speed[name] = await latency(cls, url, corpus, questions)

    print()
    print(f"{'retriever':<11} {'cases':<11} {'article 1st':>11} {'top 5':>7} {'right action':>12}")
    for name, rows in table.items():
        for label, first, top5, action in rows:
            print(
                f"{name:<11} {label:<11} {first * 100:>10.1f}% {top5 * 100:>6.1f}% "
                f"{action * 100:>11.1f}%"
            )
    print()
    print(f"{'retriever':<11} {'chunks':>7} {'search p50':>10} {'search p95':>10}")
    for name, (p50, p95) in speed.items():
        print(f"{name:<11} {args.chunks:>7} {p50:>8.2f}ms {p95:>8.2f}ms")


if __name__ == "__main__":
    asyncio.run(main())
