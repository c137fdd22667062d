"""The CPU the bot process spends per acknowledged Intercom delivery, beside a bare aiohttp app
in the same process: counted with ``time.process_time`` over whole client runs, far less noisy
on a shared machine than rates are.

Each round posts fresh signed notifications (one in ten a redelivery of an earlier one) from
``bench/webhook_client.py`` in a process of its own, first to the bare app (one route that
reads the body and answers 200), then to supportbot's ``POST /webhooks/intercom``. The parse
after the acknowledgement is held (the delivery parser stopped) unless ``--parse``, so the
figure is the acknowledgement path alone; with ``--parse`` the parsing is counted too, up to
the moment every delivery of the round is parsed. No turns run.

    PYTHONPATH=.:bench python bench/ingest_cpu.py [--deliveries 2000] [--rounds 3]
        [--concurrency 32] [--parse] [--profile FILE] [--databases sqlite postgresql]

``--profile FILE`` writes cProfile statistics of the supportbot phases to ``FILE-db.prof``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import time
from pathlib import Path
from typing import Any

from ingest_ceiling import (
    bare_app,
    bench_settings,
    client,
    loadavg,
    notifications,
    request_file,
    run_client,
)
from support import scratch_database

from bot.app import Application
from bot.store.migrate import upgrade
from tests.fakes.intercom import FakeIntercom


async def measured(
    url: str, bodies: list[bytes], concurrency: int, until: Any = None
) -> tuple[dict[str, Any], float]:
    """One client run and the CPU seconds this process spent on it (and on ``until``)."""
    requests = request_file(bodies)
    try:
        cpu = time.process_time()
        result = await run_client(url, requests, concurrency)
        if until is not None:
            await until()
        return result, time.process_time() - cpu
    finally:
        requests.unlink()


async def run(
    kind: str, deliveries: int, rounds: int, concurrency: int, parse: bool, profile: Path | None
) -> list[dict[str, Any]] | None:
    fake = FakeIntercom()
    await fake.start()
    rows: list[dict[str, Any]] = []
    profiler = cProfile.Profile(time.process_time) if profile is not None else None
    try:
        async with scratch_database(kind) as url:
            if url is None:
                return None
            settings = bench_settings(url, fake, concurrency)
            app = Application(settings, run_pipeline=False)
            await upgrade(app.db.engine)
            bare, bare_port = await bare_app()
            try:
                async with app:
                    if not parse:
                        await app.deliveries.stop()
                    bot_url = f"http://127.0.0.1:{app.http_port}/webhooks/intercom"
                    bare_url = f"http://127.0.0.1:{bare_port}/webhooks/intercom"

                    async def parsed() -> None:
                        while (await app.store.deliveries.counts()).get("pending"):
                            await asyncio.sleep(0.01)

                    # Warm-up: connections, prepared statements, caches.
                    warm = notifications(fake, 200, "warm")
                    await client(bot_url, warm, concurrency)
                    await client(bare_url, warm, concurrency)
                    for n in range(rounds):
                        unique = deliveries - deliveries // 10
                        bodies = notifications(fake, unique, f"r{n}-")
                        bodies += bodies[: deliveries - unique]
                        load = loadavg()
                        bare_result, bare_cpu = await measured(bare_url, bodies, concurrency)
                        statements = app.db.statements
                        if profiler is not None:
                            profiler.enable()
                        bot_result, bot_cpu = await measured(
                            bot_url, bodies, concurrency, parsed if parse else None
                        )
                        if profiler is not None:
                            profiler.disable()
                        rows.append(
                            {
                                "kind": kind,
                                "round": n + 1,
                                "load": load,
                                "bare_us": bare_cpu * 1e6 / len(bodies),
                                "bot_us": bot_cpu * 1e6 / len(bodies),
                                "bare_rate": bare_result["rate"],
                                "bot_rate": bot_result["rate"],
                                "p99": bot_result["p99"],
                                "statements": (app.db.statements - statements) / len(bodies),
                                "statuses": bot_result["statuses"],
                            }
                        )
            finally:
                await bare.cleanup()
    finally:
        await fake.close()
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile.with_name(f"{profile.stem}-{kind}.prof"))
    return rows


def report(rows: list[dict[str, Any]], deliveries: int, concurrency: int, parse: bool) -> None:
    print(
        f"\nCPU of the bot process per delivery: {deliveries} signed Intercom deliveries a round "
        f"(10% redeliveries), {concurrency} in flight, client in its own process; "
        f"{'parsing counted' if parse else 'acknowledgement only (parser held)'}"
    )
    header = ["database", "round", "load", "bare µs", "bot µs", "bot/bare CPU", "bare/s",
              "bot/s", "of bare", "p99 ms", "statements", "statuses"]
    table = [header]
    for r in rows:
        table.append(
            [
                r["kind"], str(r["round"]), r["load"], f"{r['bare_us']:.0f}", f"{r['bot_us']:.0f}",
                f"{r['bot_us'] / r['bare_us']:.2f}", f"{r['bare_rate']:,.0f}",
                f"{r['bot_rate']:,.0f}", f"{r['bot_rate'] / r['bare_rate']:.2f}",
                f"{r['p99']:.1f}", f"{r['statements']:.3f}",
                ",".join(f"{k}:{v}" for k, v in sorted(r["statuses"].items())),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        print(
            f"{kind}: median bot {statistics.median(r['bot_us'] for r in mine):.0f} µs, "
            f"bare {statistics.median(r['bare_us'] for r in mine):.0f} µs per delivery"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--parse", action="store_true", help="count the parse after the ack")
    parser.add_argument("--profile", type=Path, help="cProfile the supportbot phases")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for kind in args.databases:
        found = asyncio.run(
            run(kind, args.deliveries, args.rounds, args.concurrency, args.parse, args.profile)
        )
        if found is None:
            print(f"{kind}: unreachable, skipped")
        else:
            rows += found
    report(rows, args.deliveries, args.concurrency, args.parse)


if __name__ == "__main__":
    main()
