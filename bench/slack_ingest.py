"""Slack Events API ingest: signed deliveries into ``supportbot``'s HTTP port until the 2xx.

Each delivery goes through Bolt (signature check, authorization, the catch-all listener), the
Slack connector's listening rules, and a durable inbox insert before the acknowledgement, which
is what Slack waits for. The dispatcher is off, so only ingest is timed. A fake Slack Web API on
127.0.0.1 answers ``auth.test`` (profiles and files are fetched at turn time, not during ingest).
Runs on SQLite and, when reachable at ``$SUPPORTBOT_BENCH_PG_URL``, PostgreSQL.

    PYTHONPATH=. python bench/slack_ingest.py [--deliveries 3000] [--concurrency 32] [--users 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
from support import scratch_database

from bot.app import Application
from bot.config import Settings
from bot.store.migrate import upgrade
from tests.fakes.slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    event_callback,
    message,
    signed_headers,
)

CHANNEL = "CSUPPORT"




async def run(kind: str, deliveries: int, concurrency: int, users: int) -> list[str] | None:
    async with scratch_database(kind) as url, FakeSlack() as slack:
        if url is None:
            return None
        for n in range(users):
            slack.add_user(f"U{n:05d}", f"User {n}", f"user{n}@example.com")
        settings = Settings.model_validate({
            "database": {"url": url, "pool_size": max(10, concurrency)},
            "http": {"port": 0},
            "log": {"level": "WARNING"},
            "connectors": ["slack"],
            "slack": {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
                      "base_url": slack.base_url, "support_channels": [CHANNEL],
                      "working_reaction": ""},
        })
        app = Application(settings, run_pipeline=False)
        await upgrade(app.db.engine)
        async with app:
            endpoint = f"http://127.0.0.1:{app.http_port}/slack/events"
            bodies = []
            for n in range(deliveries):
                ts = f"{1_700_000_000 + n}.{n % 1_000_000:06d}"
                event = message(CHANNEL, f"U{n % users:05d}", f"question number {n}", ts)
                bodies.append(json.dumps(event_callback(event)).encode())
            latencies: list[float] = []
            statuses: dict[int, int] = {}
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            for body in bodies:
                queue.put_nowait(body)
            connector = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def worker() -> None:
                    while not queue.empty():
                        body = queue.get_nowait()
                        started = time.perf_counter()
                        async with session.post(endpoint, data=body, headers=signed_headers(body)) as r:
                            await r.read()
                            statuses[r.status] = statuses.get(r.status, 0) + 1
                        latencies.append(time.perf_counter() - started)

                clock = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                elapsed = time.perf_counter() - clock
            stored = (await app.store.inbox_counts()).get("pending", 0)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        return [
            kind, str(deliveries), str(concurrency), f"{deliveries / elapsed:,.0f}",
            f"{statistics.median(latencies) * 1000:.1f}", f"{p99:.1f}",
            f"{stored}/{deliveries}", ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    header = ["database", "deliveries", "concurrency", "deliveries/s", "p50 ack ms", "p99 ack ms",
              "stored", "statuses"]
    rows = [header]
    for kind in ("sqlite", "postgresql"):
        row = asyncio.run(run(kind, args.deliveries, args.concurrency, args.users))
        rows.append(row or [kind, "-", "-", "unreachable", "-", "-", "-", "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
