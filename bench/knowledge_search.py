"""Knowledge-base search latency on a 10,000-chunk knowledge base, SQLite and PostgreSQL.

Generates a help center of Markdown files (a Zipf-distributed vocabulary of synthetic words
mixed with real support words), ingests it through ``KnowledgeBase.ingest`` into a temporary
database, then times ``KnowledgeBase.search`` over a few hundred queries (realistic questions,
random word bags, off-topic and hostile input). PostgreSQL runs when reachable at
``$SUPPORTBOT_BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``); a throwaway
database is created and dropped.

    python bench/knowledge_search.py [--chunks 10000] [--queries 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from support import KEYWORD_ONLY, PG_URL, scratch_database

from bot.config import DatabaseSettings, KnowledgeSettings
from bot.knowledge import KnowledgeBase
from bot.store.database import Database
from bot.store.migrate import upgrade

SECTIONS_PER_DOCUMENT = 20
CHUNK_CHARS = 1200

SUPPORT_WORDS = ["account", "password", "reset", "email", "invoice", "billing", "refund", "charge", "card", "payment", "plan", "upgrade", "downgrade", "cancel", "subscription", "workspace", "member", "invite", "role", "admin", "owner", "guest", "project", "file", "upload", "storage", "export", "import", "api", "key", "token", "webhook", "signature", "retry", "rate", "limit", "error", "timeout", "sync", "desktop", "mobile", "app", "login", "sign", "sso", "saml", "okta", "security", "two", "factor", "authentication", "code", "recovery", "backup", "restore", "delete", "archive", "share", "permission", "folder", "link", "download", "report", "dashboard", "notification", "integration", "slack", "calendar", "search", "filter", "tag", "comment", "task", "deadline", "template", "status", "outage", "incident", "uptime"]

QUESTIONS = [
    "How do I reset my password?",
    "I was charged twice this month",
    "Can I get a refund on my annual plan?",
    "How do I cancel my subscription?",
    "I lost my phone and can't get my 2FA code",
    "How do I create an API key?",
    "What happens when I hit the API rate limit?",
    "Do you retry failed webhook deliveries?",
    "How do I set up SAML single sign-on with Okta?",
    "How can I export all my data?",
    "Is the service down right now?",
    "Where can I download my invoices?",
]
OFF_TOPIC = ["what's the weather on mars", "recommend a good pasta recipe", "how tall is everest"]
HOSTILE = ['double "charge', "card -password", "AND", "NEAR(", "*", "'; drop table x; --", "🙂", ""]


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    syllables = [
        "ka",
        "lo",
        "mi",
        "ne",
        "ru",
        "sa",
        "to",
        "vi",
        "ze",
        "bra",
        "cor",
        "dex",
        "fin",
        "gal",
        "hup",
        "jor",
        "kel",
        "lum",
        "mor",
        "nix",
        "pol",
        "quar",
        "rin",
        "stel",
    ]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def _sentence(rng: random.Random, vocab: list[str], weights: list[float]) -> str:
    picked = rng.choices(vocab, weights=weights, k=rng.randint(8, 16))
    for i in range(len(picked)):
        if rng.random() < 0.25:
            picked[i] = rng.choice(SUPPORT_WORDS)
    return " ".join(picked).capitalize() + "."


def generate(root: Path, chunks: int, seed: int = 7) -> list[str]:
    """Write Markdown files holding about ``chunks`` chunks; return the vocabulary."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng, 6000)
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]  # Zipf
    documents = max(1, chunks // SECTIONS_PER_DOCUMENT)
    for d in range(documents):
        lines = [f"# {rng.choice(SUPPORT_WORDS).title()} guide {d}", ""]
        for s in range(SECTIONS_PER_DOCUMENT):
            lines += [f"## {rng.choice(vocab)} {rng.choice(SUPPORT_WORDS)} {s}", ""]
            # ~900 characters: one chunk per section at the default chunk size.
            paragraph = []
            while sum(len(p) + 1 for p in paragraph) < 850:
                paragraph.append(_sentence(rng, vocab, weights))
            lines += [" ".join(paragraph), ""]
        (root / f"article-{d:05d}.md").write_text("\n".join(lines), encoding="utf-8")
    return vocab


def queries(vocab: list[str], count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    fixed = QUESTIONS + OFF_TOPIC + HOSTILE
    while len(out) < count:
        roll = rng.random()
        if roll < 0.4:
            out.append(rng.choice(fixed))
        elif roll < 0.8:
            words = rng.sample(SUPPORT_WORDS, 2) + rng.sample(vocab[:2000], rng.randint(1, 3))
            out.append("how do I " + " ".join(words) + "?")
        else:
            out.append(" ".join(rng.sample(vocab, rng.randint(3, 8))))
    return out




async def run_backend(label: str, url: str, corpus: Path, qs: list[str]) -> dict[str, object]:
    db = Database(DatabaseSettings(url=url))
    try:
        await upgrade(db.engine)
        kb = KnowledgeBase(db, KnowledgeSettings(chunk_chars=CHUNK_CHARS, embeddings=KEYWORD_ONLY))
        started = time.perf_counter()
        report = await kb.ingest([corpus])
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        again = await kb.ingest([corpus])
        reingest_s = time.perf_counter() - started
        assert again.unchanged == report.added
        for q in qs[:20]:  # warm caches and the connection pool
            await kb.search(q)
        latencies = []
        cpu = []
        hits = 0
        for q in qs:
            t0, c0 = time.perf_counter(), time.process_time()
            found = await kb.search(q)
            latencies.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            hits += bool(found)
        latencies.sort()
        cpu.sort()
        return {
            "backend": label,
            "chunks": await kb.count_chunks(),
            "ingest_s": ingest_s,
            "reingest_s": reingest_s,
            "queries": len(qs),
            "answered": hits,
            "p50": statistics.median(latencies),
            "p95": latencies[int(0.95 * (len(latencies) - 1))],
            "max": latencies[-1],
            "cpu50": statistics.median(cpu),
            "cpu95": cpu[int(0.95 * (len(cpu) - 1))],
        }
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        vocab = generate(corpus, args.chunks)
        qs = queries(vocab, args.queries)
        results = [
            await run_backend("sqlite (FTS5)", f"sqlite+aiosqlite:///{tmp}/bench.db", corpus, qs)
        ]
        async with scratch_database("postgresql") as pg_url:
            if pg_url is None:
                print(f"PostgreSQL not reachable at {PG_URL}: skipped")
            else:
                results.append(await run_backend("postgresql (tsvector)", pg_url, corpus, qs))

    print()
    print(
        f"{'backend':<22} {'chunks':>7} {'ingest s':>9} {'re-ingest s':>12} {'queries':>8} "
        f"{'answered':>9} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'cpu p50':>8} {'cpu p95':>8}"
    )
    for r in results:
        print(
            f"{r['backend']:<22} {r['chunks']:>7} {r['ingest_s']:>9.1f} {r['reingest_s']:>12.2f} "
            f"{r['queries']:>8} {r['answered']:>9} {r['p50']:>7.2f} {r['p95']:>7.2f} "
            f"{r['max']:>7.2f} {r['cpu50']:>8.2f} {r['cpu95']:>8.2f}"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        "\nms per search: wall time, and this process's CPU time (SQLite runs in-process; the "
        f"PostgreSQL server's own work is not in it). Load average {load} on {os.cpu_count()} CPUs."
    )


if __name__ == "__main__":
    asyncio.run(main())
