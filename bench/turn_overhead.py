"""Per-turn overhead of the spine: inbox → dispatcher → turn → run + actions committed → outbox.

Two runners: a zero-cost one (what the spine itself costs: claim, identity, history, commit, the
action sent) and the real default engine (offline responder over the bundled knowledge base).
The connector does nothing, so helpdesk latency is zero too. Two measurements each:

* latency — one message at a time, submit → its action sent (median, p95);
* throughput — N messages on N threads submitted at once, turns/s until every action is sent.

Target (DESIGN.md §11): median ≤ 5 ms and ≥ 200 turns/s per process.

    PYTHONPATH=. python bench/turn_overhead.py [--turns 1000]

PostgreSQL runs when reachable at ``$SUPPORTBOT_BENCH_PG_URL`` (a scratch database).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from support import PG_URL, scratch_database

from bot.app import Application
from bot.config import Settings
from bot.connector import Connector
from bot.domain import Action, ActionKind, InboundMessage, PlannedAction, StopReason, Thread
from bot.pipeline.turn import TurnContext, TurnResult
from bot.store.migrate import upgrade


class ZeroRunner:
    async def run(self, ctx: TurnContext) -> TurnResult:
        return TurnResult(
            output_text="ok",
            stop_reason=StopReason.END_TURN,
            actions=(PlannedAction(ActionKind.REPLY, text="ok"),),
        )


class CountingConnector(Connector):
    name = "bench"

    def __init__(self) -> None:
        self.sent = 0
        self.changed = asyncio.Event()

    async def execute(self, action: Action, thread: Thread) -> str | None:
        self.sent += 1
        self.changed.set()
        return None


def _message(i: int, tag: str) -> InboundMessage:
    return InboundMessage(
        source="bench",
        dedup_key=f"{tag}-{i}",
        thread_external_id=f"bench:{tag}:{i}",
        smith_external_id=f"bench:user-{i}",
        text="How do I reset my password?",
    )


async def _until(connector: CountingConnector, count: int) -> None:
    while connector.sent < count:
        connector.changed.clear()
        await connector.changed.wait()


async def measure(
    db_url: str, runner_factory: Callable[[Application], Awaitable[object]] | None, turns: int
) -> tuple[float, float, float]:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "pipeline": {"concurrency": 32, "poll_interval_seconds": 0.5},
            "log": {"level": "WARNING"},
            "connectors": [],
        }
    )
    connector = CountingConnector()
    app = Application(settings, runner_factory=runner_factory,  # type: ignore[arg-type]
                      connectors=[connector], serve_http=False)
    await upgrade(app.db.engine)
    await app.start()
    try:
        latencies = []
        for i in range(min(200, turns)):
            began = time.perf_counter()
            await app.submit(_message(i, "seq"))
            await _until(connector, i + 1)
            latencies.append((time.perf_counter() - began) * 1000)
        base = connector.sent
        began = time.perf_counter()
        await asyncio.gather(*(app.submit(_message(i, "par")) for i in range(turns)))
        await _until(connector, base + turns)
        elapsed = time.perf_counter() - began
    finally:
        await app.stop()
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.95) - 1], turns / elapsed


async def _zero(_: Application) -> ZeroRunner:
    return ZeroRunner()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    args = parser.parse_args()

    rows = []
    for label, factory in (
        ("spine only (zero-cost runner)", _zero),
        ("default engine (offline responder)", None),
    ):
        for kind in ("sqlite", "postgresql"):
            async with scratch_database(kind) as url:
                if url is None:
                    print(f"PostgreSQL not reachable at {PG_URL}: skipped")
                    continue
                rows.append((kind, label, *await measure(url, factory, args.turns)))

    print(f"\nturns: {args.turns} in parallel on distinct threads; latency over 200 sequential turns\n")
    print(f"{'database':<11} {'runner':<36} {'median ms':>10} {'p95 ms':>8} {'turns/s':>9}")
    print("-" * 78)
    for db, label, median, p95, rate in rows:
        print(f"{db:<11} {label:<36} {median:>10.1f} {p95:>8.1f} {rate:>9.0f}")
    print("\ntarget: median ≤ 5 ms, ≥ 200 turns/s per process")


if __name__ == "__main__":
    asyncio.run(main())
