"""Offline responder answer time on a 10,000-chunk knowledge base (target: p95 ≤ 20 ms).

Builds the same synthetic help center as ``bench/knowledge_search.py`` (about 10,000 chunks),
ingests it into a temporary SQLite database (and PostgreSQL when reachable at
``$SUPPORTBOT_BENCH_PG_URL``), then for a few hundred customer questions times:

- ``answer``: one ``OfflineProvider.complete`` call on a first-turn request — the responder's
  own knowledge search (no result cache; after one untimed warm-up pass) and its decision
  (answer with a citation, or ESCALATE);
- ``decide``: the same calls with the search results looked up in a dict — the responder's own
  share of the answer time (everything else is the knowledge base's search);
- ``turn``: a whole ``AgentRunner.run`` with the offline responder — guardrails, retrieval,
  context, the responder, and the ESCALATE tool when it escalates (the store commit is the
  dispatcher's and not included).

    python bench/offline_responder.py [--chunks 10000] [--questions 400]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from knowledge_search import generate, queries
from support import KEYWORD_ONLY, PG_URL, scratch_database

from bot.agent.engine import make_runner
from bot.agent.retrieval import CachedSearch
from bot.config import DatabaseSettings, KnowledgeSettings, OfflineSettings, Settings
from bot.domain import AgentDefinition, Control, Smith, Thread, ThreadState, now
from bot.knowledge import KnowledgeBase, Passage
from bot.pipeline.events import TurnEvent
from bot.pipeline.turn import TurnContext
from bot.providers.base import ChatMessage, ModelRequest, ToolSpec
from bot.providers.offline import OfflineProvider
from bot.store.database import Database
from bot.store.migrate import upgrade

CHUNK_CHARS = 1200
TOOLS = tuple(
    ToolSpec(n, "", {"type": "object"}) for n in ("USER_INFO_LOOKUP", "ESCALATE", "CLOSE")
)


class _Precomputed:
    def __init__(self, found: dict[str, list[Passage]]):
        self._found = found

    async def search(self, query: str, *, limit: int = 5) -> list[Passage]:
        return self._found.get(query, [])[:limit]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def _context(question: str, n: int) -> TurnContext:
    at = now()
    smith = Smith(
        id=f"smt_{n}",
        agent_id="agt",
        external_id=f"web:bench-{n}",
        display_name="Ada",
        customer_id=None,
        metadata={},
        auto_memory=False,
        pinned_version=None,
        archived_at=None,
        created_at=at,
        updated_at=at,
    )
    thread = Thread(
        id=f"thr_{n}",
        smith_id=smith.id,
        agent_id="agt",
        external_id=f"web:{n}",
        channel="web",
        state=ThreadState.OPEN,
        control=Control.BOT,
        title=None,
        metadata={},
        created_at=at,
        updated_at=at,
    )
    from bot.domain import InboundMessage

    async def emit(event: TurnEvent) -> None:
        return None

    return TurnContext(
        run_id=f"run_{n}",
        agent=AgentDefinition(slug="support", name="Support", instructions="Help {display_name}."),
        agent_version=None,
        smith=smith,
        thread=thread,
        messages=(InboundMessage("web", f"k{n}", thread.external_id, smith.external_id, question),),
        history=(),
        memories=(),
        emit=emit,
    )


async def run_backend(
    label: str, url: str, corpus: Path, questions: list[str]
) -> dict[str, object]:
    db = Database(DatabaseSettings(url=url))
    try:
        await upgrade(db.engine)
        kb = KnowledgeBase(db, KnowledgeSettings(chunk_chars=CHUNK_CHARS, embeddings=KEYWORD_ONLY))
        await kb.ingest([corpus])
        responder = OfflineProvider(OfflineSettings(), kb)
        # Steady state, as in a running daemon: one untimed pass warms the connection pool and
        # the database's page cache (the first pass after an ingest reads cold pages).
        for q in questions:
            await responder.complete(ModelRequest((ChatMessage("user", q),), TOOLS))

        answer_ms: list[float] = []
        answered = escalated = 0
        for q in questions:
            request = ModelRequest((ChatMessage("system", "Help."), ChatMessage("user", q)), TOOLS)
            started = time.perf_counter()
            response = await responder.complete(request)
            answer_ms.append((time.perf_counter() - started) * 1000)
            if response.tool_calls:
                escalated += 1
            else:
                answered += 1

        found = {q: await kb.search(" ".join(q.split()), limit=3) for q in questions}
        decided = OfflineProvider(OfflineSettings(), _Precomputed(found))
        decide_ms: list[float] = []
        for q in questions:
            request = ModelRequest((ChatMessage("system", "Help."), ChatMessage("user", q)), TOOLS)
            started = time.perf_counter()
            await decided.complete(request)
            decide_ms.append((time.perf_counter() - started) * 1000)

        settings = Settings.model_validate({"database": {"url": url}})
        knowledge = CachedSearch(kb)
        # The runner's tools call out through the application's session; no tool here does.
        async with aiohttp.ClientSession() as http:
            runner = make_runner(
                settings,
                http=http,
                provider=OfflineProvider(OfflineSettings(), knowledge),
                connectors={},
                knowledge=knowledge,
                remote=False,
            )
            turn_ms: list[float] = []
            try:
                for n, q in enumerate(questions):
                    ctx = _context(q, n)
                    started = time.perf_counter()
                    await runner.run(ctx)
                    turn_ms.append((time.perf_counter() - started) * 1000)
            finally:
                await runner.aclose()
        return {
            "backend": label,
            "chunks": await kb.count_chunks(),
            "questions": len(questions),
            "answered": answered,
            "escalated": escalated,
            "p50": statistics.median(answer_ms),
            "p95": _percentile(answer_ms, 0.95),
            "max": max(answer_ms),
            "decide_p95": _percentile(decide_ms, 0.95),
            "turn_p50": statistics.median(turn_ms),
            "turn_p95": _percentile(turn_ms, 0.95),
        }
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--questions", type=int, default=400)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="offline-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        vocab = generate(corpus, args.chunks)
        questions = [q for q in queries(vocab, args.questions * 2) if q.strip()][: args.questions]
        results = [
            await run_backend("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db", corpus, questions)
        ]
        async with scratch_database("postgresql") as pg_url:
            if pg_url is None:
                print(f"PostgreSQL not reachable at {PG_URL}: skipped")
            else:
                results.append(await run_backend("postgresql", pg_url, corpus, questions))

    print()
    print(
        f"{'backend':<11} {'chunks':>7} {'questions':>9} {'answered':>9} {'escalated':>9} "
        f"{'answer p50':>10} {'answer p95':>10} {'answer max':>10} {'decide p95':>10} "
        f"{'turn p50':>9} {'turn p95':>9}"
    )
    for r in results:
        print(
            f"{r['backend']:<11} {r['chunks']:>7} {r['questions']:>9} {r['answered']:>9} "
            f"{r['escalated']:>9} {r['p50']:>8.2f}ms {r['p95']:>8.2f}ms {r['max']:>8.2f}ms "
            f"{r['decide_p95']:>8.3f}ms "
            f"{r['turn_p50']:>7.2f}ms {r['turn_p95']:>7.2f}ms"
        )
    print("\ntarget: answer p95 ≤ 20 ms")


if __name__ == "__main__":
    asyncio.run(main())
