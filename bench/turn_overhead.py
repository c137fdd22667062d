"""Per-turn overhead of the spine: inbox → dispatcher → turn → run + actions committed → outbox.

Two runners: a zero-cost one (what the spine itself costs: claim, identity, history, commit, the
action sent) and the real default engine (offline responder over the bundled knowledge base).
The connector does nothing, so helpdesk latency is zero too. Two measurements each:

* latency — one message at a time, submit → its action sent (median, p95);
* throughput — N messages on N threads submitted at once, turns/s until every action is sent.

Beside the wall clock, which a shared machine makes noisy, the throughput run counts what a
turn costs whatever else runs: CPU of this process per turn (``time.process_time``: the event
loop and SQLite's worker threads), CPU of the PostgreSQL server processes serving it per turn
(read from ``/proc`` when the server runs on this machine), and the store's transactions
(``Database.round_trips``) and statements per turn.

Target (DESIGN.md §11): median ≤ 5 ms and ≥ 200 turns/s per process.

    PYTHONPATH=.:bench python bench/turn_overhead.py [--turns 1000] [--databases sqlite postgresql]
        [--runners spine engine] [--pg-socket /var/run/postgresql]

PostgreSQL runs when reachable at ``$SUPPORTBOT_BENCH_PG_URL`` (a scratch database);
``--pg-socket`` makes the bot reach that server through its Unix-domain socket in that folder
instead of TCP (the server must run on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import URL, make_url
from support import PG_URL, scratch_database

from bot.app import Application
from bot.config import Settings
from bot.connector import Connector
from bot.domain import Action, ActionKind, InboundMessage, PlannedAction, StopReason, Thread
from bot.pipeline.turn import TurnContext, TurnResult
from bot.store.migrate import upgrade
from tests.fakes.wire import ServerExchanges


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


@dataclass(frozen=True)
class Figures:
    median_ms: float
    p95_ms: float
    rate: float
    cpu_ms: float  # this process, per turn of the throughput run
    server_cpu_ms: float | None  # PostgreSQL's backends, per turn (None: not measurable)
    round_trips: float
    statements: float
    exchanges: float | None  # writes to PostgreSQL's socket (None: SQLite)


_TICK = os.sysconf("SC_CLK_TCK")


class ServerCpu:
    """CPU time of the PostgreSQL backends connected to one database, from ``/proc`` (the
    server must run on this machine; otherwise nothing is read). Backends come and go with
    the pool's overflow, so they are sampled while the measured work runs."""

    def __init__(self, db_url: str):
        url = make_url(db_url)
        self._database = url.database
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._base: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._sampling: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self._dsn)
        self._base = await self._read()
        self._last = dict(self._base)
        self._sampling = asyncio.create_task(self._sample(), name="bench:server-cpu")

    async def stop(self) -> float | None:
        """The backends' CPU seconds since ``start`` (None: none could be read)."""
        assert self._sampling is not None
        self._sampling.cancel()
        await asyncio.gather(self._sampling, return_exceptions=True)
        self._last.update(await self._read())
        await self._conn.close()
        if not self._last:
            return None
        return sum(cpu - self._base.get(pid, 0.0) for pid, cpu in self._last.items())

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(0.2)  # often enough to see overflow connections come and go
            self._last.update(await self._read())

    async def _read(self) -> dict[int, float]:
        rows = await self._conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self._database,
        )
        found = {pid: _cpu_seconds(pid) for (pid,) in rows}
        return {pid: cpu for pid, cpu in found.items() if cpu is not None}


def via_socket(db_url: str, folder: str) -> str:
    """The same database reached through the server's Unix-domain socket in ``folder``."""
    url = make_url(db_url)
    return URL.create(
        url.drivername, url.username, url.password, database=url.database,
        query={**url.query, "host": folder},
    ).render_as_string(hide_password=False)


def _cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of a process (a read of procfs, which never blocks)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None  # it exited
    return (int(fields[11]) + int(fields[12])) / _TICK


async def measure(
    db_url: str, runner_factory: Callable[[Application], Awaitable[object]] | None, turns: int
) -> Figures:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "pipeline": {"concurrency": 32, "poll_interval_seconds": 0.5},
            "log": {"level": "WARNING"},
            "connectors": [],
        }
    )
    connector = CountingConnector()
    app = Application(
        settings,
        runner_factory=runner_factory,  # type: ignore[arg-type]
        connectors=[connector],
        serve_http=False,
    )
    exchanges = None if app.db.is_sqlite else ServerExchanges(app.db.engine)
    await upgrade(app.db.engine)
    server = None if app.db.is_sqlite else ServerCpu(db_url)
    await app.start()
    try:
        latencies = []
        for i in range(min(200, turns)):
            began = time.perf_counter()
            await app.submit(_message(i, "seq"))
            await _until(connector, i + 1)
            latencies.append((time.perf_counter() - began) * 1000)
        base = connector.sent
        if server is not None:
            await server.start()
        trips, statements = app.db.round_trips, app.db.statements
        written = exchanges.count if exchanges is not None else 0
        cpu = time.process_time()
        began = time.perf_counter()
        await asyncio.gather(*(app.submit(_message(i, "par")) for i in range(turns)))
        await _until(connector, base + turns)
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu
        trips, statements = app.db.round_trips - trips, app.db.statements - statements
        written = exchanges.count - written if exchanges is not None else 0
        server_cpu = await server.stop() if server is not None else None
    finally:
        await app.stop()
    latencies.sort()
    return Figures(
        median_ms=statistics.median(latencies),
        p95_ms=latencies[int(len(latencies) * 0.95) - 1],
        rate=turns / elapsed,
        cpu_ms=cpu * 1000 / turns,
        server_cpu_ms=None if server_cpu is None else server_cpu * 1000 / turns,
        round_trips=trips / turns,
        statements=statements / turns,
        exchanges=None if exchanges is None else written / turns,
    )


async def _zero(_: Application) -> ZeroRunner:
    return ZeroRunner()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--runners", nargs="+", default=["spine", "engine"], choices=["spine", "engine"]
    )
    parser.add_argument(
        "--pg-socket", metavar="FOLDER",
        help="reach PostgreSQL through its Unix-domain socket in FOLDER instead of TCP",
    )
    args = parser.parse_args()

    rows = []
    runners = {
        "spine": ("spine only (zero-cost runner)", _zero),
        "engine": ("default engine (offline responder)", None),
    }
    for label, factory in (runners[name] for name in args.runners):
        for kind in args.databases:
            async with scratch_database(kind) as url:
                if url is None:
                    print(f"PostgreSQL not reachable at {PG_URL}: skipped")
                    continue
                if kind == "postgresql" and args.pg_socket:
                    url = via_socket(url, args.pg_socket)
                rows.append((kind, label, await measure(url, factory, args.turns)))

    print(
        f"\nturns: {args.turns} in parallel on distinct threads; latency over 200 sequential turns;"
    )
    print("per turn of the parallel run: CPU of this process, of the PostgreSQL backends, and")
    print(f"the store's transactions, statements and writes to PostgreSQL's socket (exch); load "
          f"average {_load()}")
    if args.pg_socket and "postgresql" in args.databases:
        print(f"PostgreSQL through its Unix-domain socket in {args.pg_socket}")
    print()
    print(
        f"{'database':<11} {'runner':<36} {'median ms':>10} {'p95 ms':>8} {'turns/s':>9} "
        f"{'cpu ms':>7} {'pg cpu ms':>10} {'trips':>6} {'stmts':>6} {'exch':>6}"
    )
    print("-" * 118)
    for db, label, f in rows:
        server = "-" if f.server_cpu_ms is None else f"{f.server_cpu_ms:.2f}"
        print(
            f"{db:<11} {label:<36} {f.median_ms:>10.1f} {f.p95_ms:>8.1f} {f.rate:>9.0f} "
            f"{f.cpu_ms:>7.2f} {server:>10} {f.round_trips:>6.2f} {f.statements:>6.1f} "
            f"{'-' if f.exchanges is None else f'{f.exchanges:.1f}':>6}"
        )
    print("\ntarget: median ≤ 5 ms, ≥ 200 turns/s per process")


def _load() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


if __name__ == "__main__":
    asyncio.run(main())
