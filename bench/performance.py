"""Issue 17's figures in one run: a turn's store round trips (counted), the turn median and
turns/s on SQLite and PostgreSQL with 1k and 100k threads already stored, and — unless
``--turns-only`` — the Intercom ingest beside a bare aiohttp app and ``triage --once``
benchmarks run as they stand (``bench/ingest_wrk.py``, ``bench/triage.py``), their
summaries printed beside the targets; with ``--memory MINUTES`` the daemon's RSS over a soak
(``bench/memory.py``).

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

from plans import Plan, StatementLog, explain, short
from seeding import STATES, seed_store
from support import PG_URL, scratch_database
from turn_overhead import CountingConnector, ZeroRunner, _message, _until

from bot.app import Application
from bot.config import Settings
from bot.domain import ThreadState
from bot.store.analytics import Analytics, Window
from bot.store.attention import needing_a_person
from bot.store.erasure import Erasures
from bot.store.migrate import upgrade
from bot.store.web import WebStore
from tests.fakes.wire import ServerExchanges

SEQUENTIAL = 200
MILLION = 1_000_000
TARGET_MEDIAN_MS = 5.0
TARGET_RATE = 200.0
TARGET_ROUND_TRIPS = 4


async def measure(
    db_url: str, size: int, turns: int, state: str, log: StatementLog | None = None
) -> dict[str, Any]:
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
    exchanges = None if app.db.is_sqlite else ServerExchanges(app.db.engine)
    await upgrade(app.db.engine)
    slug = app.settings.default_agent
    agent = await app.store.ensure_agent(slug, app.definition(slug).name)
    seeded = await seed_store(db_url, agent.id, slug, size, state)
    if log is not None:
        log.attach(app.db.engine.sync_engine, app.db._sync_engine)
    await app.start()
    try:
        await app.submit(_message(0, "warm"))  # the agent's id is learnt on its first turn
        await _until(connector, 1)
        await asyncio.sleep(0.05)
        latencies: list[float] = []
        trips: list[int] = []
        statements: list[int] = []
        sent: list[int] = []
        if log is not None:
            log.recording = "turn"
        cpu, io = time.process_time(), _io()
        for i in range(SEQUENTIAL):
            before, said = app.db.round_trips, app.db.statements
            wrote = exchanges.count if exchanges is not None else 0
            began = time.perf_counter()
            await app.submit(_message(i, "seq"))
            await _until(connector, i + 2)
            latencies.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.002)  # let the sender record the send before counting
            trips.append(app.db.round_trips - before)
            statements.append(app.db.statements - said)
            if exchanges is not None:
                sent.append(exchanges.count - wrote)
        cpu_ms = (time.process_time() - cpu) * 1000 / SEQUENTIAL
        after = _io()
        reads = (after["syscr"] - io["syscr"]) / SEQUENTIAL
        written = (after["write_bytes"] - io["write_bytes"]) / SEQUENTIAL / 1024
        if log is not None:
            log.recording = None
        base = connector.sent
        began = time.perf_counter()
        await asyncio.gather(*(app.submit(_message(i, "par")) for i in range(turns)))
        await _until(connector, base + turns)
        elapsed = time.perf_counter() - began
        plans: list[Plan] = []
        if log is not None:
            log.recording = "request"
            await requests(app, size)
            log.recording = None
            async with app.db.engine.connect() as conn:
                plans = await conn.run_sync(explain, log, postgresql=not app.db.is_sqlite)
    finally:
        await app.stop()
    return {
        "plans": plans,
        "seed_s": seeded,
        "cpu_ms": cpu_ms,
        "reads": reads,
        "written_kb": written,
        "round_trips": statistics.median(trips),
        "round_trips_max": max(trips),
        "statements": statistics.median(statements),
        "exchanges": statistics.median(sent) if sent else None,
        "median_ms": statistics.median(latencies),
        "p95_ms": sorted(latencies)[int(len(latencies) * 0.95) - 1],
        "rate": turns / elapsed,
    }


async def requests(app: Application, size: int) -> None:
    """What else reads the store at its full size, once each: the lookups connectors make, the
    console's and the operator API's pages, analytics, a retention sweep and an erasure."""
    store, web = app.store, WebStore(app.store)
    some = size // 2
    hour = time.time() - 3600
    await store.inbox_seen("seed", f"seed-{some}")
    await web.inbox_outcome("seed", f"seed-{some}")
    await web.unanswered(f"{app.settings.default_agent}|seed:{some}")
    await store.get_run(f"run_seed{some}")
    await store.find_threads_by_external(f"seed:{some}")
    await store.feedback.run_of_message("bench", "remote-1")
    await store.thread_runs(f"thr_seed{some}")
    await store.outbox_entries(thread_id=f"thr_seed{some}")
    await store.list_runs(limit=50)
    await store.list_runs(thread_id=f"thr_seed{some}")
    await store.list_threads(limit=50)
    await store.list_threads(state=ThreadState.ESCALATED, limit=50)
    await store.list_smiths(limit=50)
    await needing_a_person(app.db, at=time.time())
    await Analytics(app.db, app.settings.analytics).report(Window(hour, hour + 7200))
    await Erasures(app.db).erase_closed_threads(days=30)
    await Erasures(app.db).erase_smith(f"smt_seed{some + 1}", requested_by="cli")


def _io() -> dict[str, int]:
    """This process's I/O counters (``syscr``: read system calls, SQLite's page reads)."""
    fields = (line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return {name: int(value) for name, value in fields}


def _verdicts(plans: list[Plan]) -> str:
    scans = sum(1 for plan in plans if plan.scans)
    empty = sum(1 for plan in plans if plan.small and not plan.scans)
    return (f"{len(plans) - scans - empty} index" + (f", {empty} empty" if empty else "")
            + (f", {scans} SCAN" if scans else ""))


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
    parser.add_argument("--million", action="store_true",
                        help="also 1M stored threads (the seed takes minutes on PostgreSQL)")
    parser.add_argument("--memory", type=float, metavar="MINUTES", default=0.0,
                        help="also the daemon's RSS over a soak of MINUTES (bench/memory.py, "
                        "1M stored threads with --million, else 100k; SQLite)")
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--turns-only", action="store_true")
    parser.add_argument("--state", choices=STATES, default="analyzed",
                        help="how the seeded store looks to the planner (bench/seeding.py)")
    parser.add_argument("--plans", action="store_true",
                        help="print each statement's plan (EXPLAIN) at every size")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    sizes = [*args.sizes, MILLION] if args.million and MILLION not in args.sizes else args.sizes

    rows = []
    for kind in args.databases:
        for size in sizes:
            async with scratch_database(kind) as url:
                if url is None:
                    print(f"PostgreSQL not reachable at {PG_URL}: skipped")
                    break
                log = StatementLog()
                rows.append((kind, size, await measure(url, size, args.turns, args.state, log)))
                print(f"{kind} {size}: done, load {os.getloadavg()[0]:.1f}", flush=True)

    print("\nturn: zero-cost runner; round trips and latency over 200 sequential turns on new "
          f"tickets, turns/s over {args.turns} at once; store seeded '{args.state}'")
    print(f"{'database':<11} {'threads':>8} {'round trips':>12} {'stmts':>6} {'exch':>5} {'median ms':>10} {'p95 ms':>8} "
          f"{'turns/s':>8} {'cpu ms':>7} {'reads':>6} {'disk KB':>8} {'seeded in':>10} {'turn plans':>20} {'blocks/turn':>12} "
          f"{'other plans':>26}")
    print("-" * 173)
    for kind, size, r in rows:
        turn = [p for p in r["plans"] if p.phase == "turn"]
        other = [p for p in r["plans"] if p.phase != "turn"]
        blocks = (f"{sum(p.blocks * p.count for p in turn if p.blocks) / SEQUENTIAL:.0f}"
                  if any(p.blocks is not None for p in turn) else "-")
        exch = "-" if r["exchanges"] is None else f"{r['exchanges']:.0f}"
        print(f"{kind:<11} {size:>8} {r['round_trips']:>7.0f} (≤{r['round_trips_max']:.0f})"
              f" {r['statements']:>6.0f} {exch:>5}"
              f" {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f} {r['rate']:>8.0f}"
              f" {r['cpu_ms']:>7.2f} {r['reads']:>6.0f} {r['written_kb']:>8.1f} {r['seed_s']:>9.1f}s {_verdicts(turn):>20} {blocks:>12} {_verdicts(other):>26}")
    print(f"target: ≤ {TARGET_ROUND_TRIPS} round trips, median ≤ {TARGET_MEDIAN_MS:.0f} ms, "
          f"≥ {TARGET_RATE:.0f} turns/s, flat with store size (1k → 100k → 1M with --million); "
          "every statement an index lookup (a turn's, and the other requests')")
    print("stmts, exch: a sequential turn's statements and writes to PostgreSQL's socket "
          "(each a wait for the server: BEGIN and COMMIT too), medians")
    print("cpu ms: this process's CPU time per sequential turn (SQLite's work included, not "
          "PostgreSQL's); reads: its read system calls per turn (SQLite's page cache misses); disk KB: "
          "what it wrote to the disk per turn (SQLite's WAL and checkpoints)")
    print("turn plans: the statements of the sequential turns by plan; blocks/turn: PostgreSQL's "
          "shared buffers those plans touch per turn (EXPLAIN ANALYZE, a load-free count); other "
          "plans: lookups, console and API pages, analytics, retention and an erasure, once each")
    for kind, size, r in rows:
        shown = [p for p in r["plans"] if args.plans or p.scans or p.small]
        if not shown:
            continue
        print(f"\n{kind}, {size:,} threads: statements' plans" + ("" if args.plans else
              " (those that read a table whole)"))
        for plan in shown:
            ms = f" {plan.ms:.2f} ms" if plan.ms is not None else ""
            blocks = f" {plan.blocks} blocks" if plan.blocks is not None else ""
            print(f"  [{plan.phase} {plan.verdict}]{ms}{blocks} ×{plan.count} "
                  f"{short(plan.statement)}")
            for access in plan.access:
                print(f"      {access}")

    if args.turns_only:
        return
    print("\ningest (bench/ingest_wrk.py: wrk in its own process, each request a new signed "
          "notification, the bot answering what it ingests, a bare aiohttp app beside it with the "
          "same wrk parameters and background work)")
    for line in _run_bench(
        "ingest_wrk.py", [], ("sqlite", "postgresql", "aiohttp", "supportbot", "target", "wrk")
    ):
        print("  " + line)
    print("\ntriage --once (bench/triage.py)")
    for line in _run_bench("triage.py", [], ("triage", "N·L/C", "bound", "target", "reference")):
        print("  " + line)
    print("target: whole command ≤ 1.3 × N·L/C")
    threads = MILLION if args.million else 100_000
    print(f"\nmemory (bench/memory.py: the daemon's RSS, {threads:,} stored threads, "
          "web-chat visitors)")
    if args.memory:
        for line in _run_bench(
            "memory.py",
            ["--threads", str(threads), "--minutes", f"{args.memory:g}", "--every", "30"],
            ("seeded", "RSS:", "growth"),
        ):
            print("  " + line)
    else:
        print(f"  not measured in this run: --memory MINUTES, or bench/memory.py --threads "
              f"{threads} [--postgresql] (the seed takes minutes at 1M)")
    print("target: ≤ 150 MB RSS at 1M stored threads, flat over a 30-minute soak")


if __name__ == "__main__":
    asyncio.run(main())
