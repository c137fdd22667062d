"""Issue 17's figures in one run: a turn's store round trips (counted), the turn median and
turns/s on SQLite and PostgreSQL with 1k and 100k threads already stored, and — unless
``--turns-only`` — the Intercom ingest beside a bare aiohttp app and ``triage --once``
benchmarks run as they stand (``bench/ingest_ceiling.py``, ``bench/triage.py``), their
summaries printed beside the targets.

The turn runs the spine with a zero-cost runner and a connector that does nothing (what the
spine itself costs: claim, identity, history, commit, the action sent). The store is seeded
first with bulk inserts: per thread a smith, a thread, its lane, a done inbox row, a run and a
sent outbox action — the dead weight a long-running store carries.

    PYTHONPATH=. python bench/performance.py [--sizes 1000 100000] [--turns 500] [--turns-only]

PostgreSQL runs when reachable at ``$SUPPORTBOT_BENCH_PG_URL`` (a scratch database is made and
dropped). On a shared machine the figures are indicative only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support import PG_URL, scratch_database
from turn_overhead import CountingConnector, ZeroRunner, _message, _until

from bot.app import Application
from bot.config import Settings
from bot.domain import Control, InboxStatus, OutboxStatus, ThreadState
from bot.store.inbox import lane_key
from bot.store.migrate import upgrade
from bot.store.schema import inbox, lanes, outbox, runs, smiths, threads

SEED_CHUNK = 2000
SEQUENTIAL = 200
TARGET_MEDIAN_MS = 5.0
TARGET_RATE = 200.0
TARGET_ROUND_TRIPS = 4


def _seed_rows(agent_id: str, slug: str, start: int, stop: int) -> dict[Any, list[dict[str, Any]]]:
    at = time.time() - 86_400
    rows: dict[Any, list[dict[str, Any]]] = {t: [] for t in (smiths, threads, lanes, runs, inbox, outbox)}
    for i in range(start, stop):
        smith_id, thread_id, run_id, external = f"smt_seed{i}", f"thr_seed{i}", f"run_seed{i}", f"seed:{i}"
        lane = lane_key(slug, external)
        rows[smiths].append({
            "id": smith_id, "agent_id": agent_id, "external_id": f"seed:user-{i}", "display_name": None,
            "customer_id": None, "metadata": {}, "auto_memory": False, "pinned_version": None,
            "archived_at": None, "created_at": at, "updated_at": at,
        })
        rows[threads].append({
            "id": thread_id, "smith_id": smith_id, "agent_id": agent_id, "external_id": external,
            "channel": "bench", "state": ThreadState.OPEN.value, "control": Control.BOT.value,
            "title": "seeded", "metadata": {}, "created_at": at, "updated_at": at,
        })
        rows[lanes].append({"key": lane, "lease_token": None, "lease_expires_at": None, "touched_at": at})
        rows[runs].append({
            "id": run_id, "thread_id": thread_id, "smith_id": smith_id, "agent_id": agent_id,
            "agent_version": None, "input": [{"role": "user", "content": "hi"}], "output_text": "ok",
            "stop_reason": "end_turn", "model": "seed", "usage": {}, "rag_results": [], "error": None,
            "started_at": at, "finished_at": at,
        })
        rows[inbox].append({
            "source": "seed", "dedup_key": f"seed-{i}", "lane": lane, "payload": {},
            "status": InboxStatus.DONE.value, "attempts": 0, "run_id": run_id, "error": None,
            "received_at": at, "finished_at": at,
        })
        rows[outbox].append({
            "id": f"act_seed{i}", "run_id": run_id, "thread_id": thread_id, "channel": "bench",
            "kind": "reply", "payload": {}, "status": OutboxStatus.DONE.value, "attempts": 1,
            "next_attempt_at": at, "lease_token": None, "lease_expires_at": None, "remote_id": None,
            "last_error": None, "created_at": at, "updated_at": at,
        })
    return rows


async def seed(app: Application, size: int) -> float:
    """Store ``size`` finished threads; the seconds it took."""
    began = time.perf_counter()
    slug = app.settings.default_agent
    agent = await app.store.ensure_agent(slug, app.definition(slug).name)
    for start in range(0, size, SEED_CHUNK):
        rows = _seed_rows(agent.id, slug, start, min(size, start + SEED_CHUNK))

        def work(conn: Any, rows: dict[Any, list[dict[str, Any]]] = rows) -> None:
            for table in (smiths, threads, lanes, runs, inbox, outbox):
                conn.execute(table.insert(), rows[table])

        await app.db.run_tx(work)
    if not app.db.is_sqlite:
        async with app.db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - began


async def measure(db_url: str, size: int, turns: int) -> dict[str, float]:
    settings = Settings.model_validate({
        "database": {"url": db_url},
        "pipeline": {"concurrency": 32, "poll_interval_seconds": 0.5},
        "log": {"level": "WARNING"},
        "connectors": [],
    })
    connector = CountingConnector()

    async def zero(_: Application) -> ZeroRunner:
        return ZeroRunner()

    app = Application(settings, runner_factory=zero,  # type: ignore[arg-type]
                      connectors=[connector], serve_http=False)
    await upgrade(app.db.engine)
    seeded = await seed(app, size)
    await app.start()
    try:
        await app.submit(_message(0, "warm"))  # the agent's id is learnt on its first turn
        await _until(connector, 1)
        await asyncio.sleep(0.05)
        latencies: list[float] = []
        trips: list[int] = []
        for i in range(SEQUENTIAL):
            before = app.db.round_trips
            began = time.perf_counter()
            await app.submit(_message(i, "seq"))
            await _until(connector, i + 2)
            latencies.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.002)  # let the sender record the send before counting
            trips.append(app.db.round_trips - before)
        base = connector.sent
        began = time.perf_counter()
        await asyncio.gather(*(app.submit(_message(i, "par")) for i in range(turns)))
        await _until(connector, base + turns)
        elapsed = time.perf_counter() - began
    finally:
        await app.stop()
    return {
        "seed_s": seeded,
        "round_trips": statistics.median(trips),
        "round_trips_max": max(trips),
        "median_ms": statistics.median(latencies),
        "p95_ms": sorted(latencies)[int(len(latencies) * 0.95) - 1],
        "rate": turns / elapsed,
    }


def _run_bench(script: str, args: list[str], keep: tuple[str, ...]) -> list[str]:
    """Run another benchmark of this folder; the lines of its summary that matter here."""
    here = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, str(here / script), *args],
        check=False, capture_output=True, text=True, cwd=here.parent,
        env={**os.environ, "PYTHONPATH": f"{here.parent}:{here}"},
    )
    lines = [line for line in done.stdout.splitlines() if any(k in line for k in keep)]
    if done.returncode != 0:
        lines.append(f"{script} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--turns-only", action="store_true")
    args = parser.parse_args()

    rows = []
    for kind in ("sqlite", "postgresql"):
        for size in args.sizes:
            async with scratch_database(kind) as url:
                if url is None:
                    print(f"PostgreSQL not reachable at {PG_URL}: skipped")
                    break
                rows.append((kind, size, await measure(url, size, args.turns)))

    print("\nturn: zero-cost runner; round trips and latency over 200 sequential turns on new "
          f"tickets, turns/s over {args.turns} at once")
    print(f"{'database':<11} {'threads':>8} {'round trips':>12} {'median ms':>10} {'p95 ms':>8} "
          f"{'turns/s':>8} {'seeded in':>10}")
    print("-" * 74)
    for kind, size, r in rows:
        print(f"{kind:<11} {size:>8} {r['round_trips']:>7.0f} (≤{r['round_trips_max']:.0f})"
              f" {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f} {r['rate']:>8.0f} {r['seed_s']:>9.1f}s")
    print(f"target: ≤ {TARGET_ROUND_TRIPS} round trips, median ≤ {TARGET_MEDIAN_MS:.0f} ms, "
          f"≥ {TARGET_RATE:.0f} turns/s, flat with store size")

    if args.turns_only:
        return
    print("\ningest (bench/ingest_ceiling.py: client in its own process, the bot answering what it "
          "ingests, a bare aiohttp app beside it with the same client and background work)")
    for line in _run_bench(
        "ingest_ceiling.py", [], ("sqlite", "postgresql", "aiohttp", "supportbot", "target")
    ):
        print("  " + line)
    print("\ntriage --once (bench/triage.py)")
    for line in _run_bench("triage.py", [], ("triage", "N·L/C", "bound", "target", "reference")):
        print("  " + line)
    print("target: whole command ≤ 1.3 × N·L/C")


if __name__ == "__main__":
    asyncio.run(main())
