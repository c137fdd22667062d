"""Intercom webhook ingest: signed notifications into ``supportbot``'s HTTP port until the 2xx.

Each delivery is checked (size, ``X-Hub-Signature`` HMAC-SHA1 over the raw body, JSON, the
conversation item) and stored durably as it came before the answer, which is what Intercom waits
for (about 500 ms, 5 s at most); it is mapped to inbox messages after the answer. The dispatcher
is off and the client runs in the same process: ``bench/ingest_ceiling.py`` measures the
production case (a separate client, turns running, beside a bare aiohttp app). One delivery in ten is a redelivery of an earlier notification (Intercom
retries once after a minute), which must be acknowledged without a second inbox row. A fake
Intercom on 127.0.0.1 answers ``GET /me``. Runs on SQLite and, when reachable at
``$SUPPORTBOT_BENCH_PG_URL``, PostgreSQL.

    PYTHONPATH=. python bench/intercom_ingest.py [--deliveries 3000] [--concurrency 32]
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
from connectors.intercom.webhook import sign
from tests.fakes.intercom import FakeIntercom

SECRET = "bench-client-secret"




async def run(kind: str, deliveries: int, concurrency: int) -> list[str] | None:
    fake = FakeIntercom()
    await fake.start()
    try:
        async with scratch_database(kind) as url:
            if url is None:
                return None
            unique = deliveries - deliveries // 10
            bodies = []
            for n in range(unique):
                contact = fake.add_contact(f"Customer {n}", company=None)
                conversation = fake.start_conversation(contact, f"<p>question number {n}</p>")
                bodies.append(json.dumps(fake.notification("conversation.user.created", conversation)).encode())
            bodies += bodies[: deliveries - unique]  # Intercom's redeliveries
            settings = Settings.model_validate({
                "database": {"url": url, "pool_size": max(10, concurrency)},
                "http": {"port": 0},
                "log": {"level": "WARNING"},
                "connectors": ["intercom"],
                "intercom": {"token": fake.token, "client_secret": SECRET, "base_url": fake.base_url,
                             "poll_interval_seconds": 0},
            })
            app = Application(settings, run_pipeline=False)
            await upgrade(app.db.engine)
            async with app:
                endpoint = f"http://127.0.0.1:{app.http_port}/webhooks/intercom"
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
                            headers = {"Content-Type": "application/json",
                                       "X-Hub-Signature": sign(SECRET.encode(), body)}
                            started = time.perf_counter()
                            async with session.post(endpoint, data=body, headers=headers) as r:
                                await r.read()
                                statuses[r.status] = statuses.get(r.status, 0) + 1
                            latencies.append(time.perf_counter() - started)

                    clock = time.perf_counter()
                    await asyncio.gather(*(worker() for _ in range(concurrency)))
                    elapsed = time.perf_counter() - clock
                # Parsed into the inbox after the ack: count once every delivery was read.
                while (await app.store.deliveries.counts()).get("pending"):
                    await asyncio.sleep(0.05)
                stored = (await app.store.inbox_counts()).get("pending", 0)
    finally:
        await fake.close()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return [
        kind, str(deliveries), str(concurrency), f"{deliveries / elapsed:,.0f}",
        f"{statistics.median(latencies) * 1000:.1f}", f"{p99:.1f}",
        f"{stored}/{unique}", ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    header = ["database", "deliveries", "concurrency", "deliveries/s", "p50 ack ms", "p99 ack ms",
              "stored/unique", "statuses"]
    rows = [header]
    for kind in ("sqlite", "postgresql"):
        row = asyncio.run(run(kind, args.deliveries, args.concurrency))
        rows.append(row or [kind, "-", "-", "unreachable", "-", "-", "-", "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
