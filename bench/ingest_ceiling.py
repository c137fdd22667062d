"""Intercom webhook ingest beside its ceiling, as in production: the client in a process of its
own, the bot answering what it ingests while it is measured, and a bare aiohttp app (one route
that reads the body and answers 200) measured in the same run, in the same process as the bot,
with the same client and the same background work.

The daemon runs whole: the dispatcher on, the embedded offline responder answering, replies
sent to a fake Intercom on 127.0.0.1. Before the timed phases a backlog of signed notifications
is posted (untimed), so the bot is busy answering during every phase. Then, with the backlog
still being answered: the bare app, supportbot's ``POST /webhooks/intercom`` (one delivery in
ten a redelivery of an earlier notification), the bare app again. Each phase is one run of
``bench/webhook_client.py`` in a separate process with the same requests and concurrency; the
ratio is supportbot's rate over the mean of the two bare runs. Afterwards everything is left to
be answered, and the store is checked: every unique message stored once and answered once.

    PYTHONPATH=.:bench python bench/ingest_ceiling.py [--deliveries 3000] [--concurrency 32]
        [--backlog 1000]

Runs on SQLite and, when reachable at ``$SUPPORTBOT_BENCH_PG_URL``, PostgreSQL. On a shared
machine the figures are indicative only: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from sqlalchemy import func, select
from support import scratch_database

from bot.app import Application
from bot.config import Settings
from bot.store.migrate import upgrade
from bot.store.schema import runs
from connectors.intercom.webhook import sign
from tests.fakes.intercom import FakeIntercom

SECRET = "bench-client-secret"
CLIENT = Path(__file__).with_name("webhook_client.py")
TARGET_RATE = 2000.0
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.5
SETTLE_SECONDS = 300.0
LAG_TICK = 0.002


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def notifications(fake: FakeIntercom, count: int, tag: str) -> list[bytes]:
    bodies = []
    for n in range(count):
        contact = fake.add_contact(f"Customer {tag}{n}", company=None)
        conversation = fake.start_conversation(
            contact, f"<p>How do I <b>reset my password</b>? ({tag} {n})</p>"
        )
        notification = fake.notification("conversation.user.created", conversation)
        bodies.append(json.dumps(notification).encode())
    return bodies


def request_file(bodies: list[bytes]) -> Path:
    """The client's requests (each body with its signature) in a file of their own; signed
    here, before any CPU of this process is counted."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump([[b.decode(), sign(SECRET.encode(), b)] for b in bodies], file)
    return Path(file.name)


async def client(url: str, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    """One run of the load client in its own process."""
    requests = request_file(bodies)
    try:
        return await run_client(url, requests, concurrency)
    finally:
        requests.unlink()


async def run_client(url: str, requests: Path, concurrency: int) -> dict[str, Any]:
    """One run of the load client in its own process, over a ``request_file``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        url,
        str(requests),
        str(concurrency),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the client failed: {err.decode().strip()[-500:]}")
    result: dict[str, Any] = json.loads(out)
    latencies = sorted(result["latencies"])
    result["p50"] = statistics.median(latencies) * 1000
    result["p99"] = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return result


async def bare_app() -> tuple[web.AppRunner, int]:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/webhooks/intercom", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def bench_settings(url: str, fake: FakeIntercom, concurrency: int) -> Settings:
    """The daemon's settings: the Intercom connector on the fake, the webhook secret set."""
    return Settings.model_validate(
        {
            "database": {"url": url, "pool_size": max(10, concurrency)},
            "http": {"port": 0},
            "log": {"level": "WARNING"},
            "connectors": ["intercom"],
            "intercom": {
                "token": fake.token,
                "client_secret": SECRET,
                "base_url": fake.base_url,
                "poll_interval_seconds": 0,
            },
        }
    )


async def answered(app: Application) -> int:
    return int(
        await app.db.run_read(
            lambda c: c.execute(select(func.count()).select_from(runs)).scalar_one()
        )
    )


async def waiting(app: Application) -> int:
    """Messages stored and not answered yet (in the inbox or, parsed after the ack, before it)."""
    pending = (await app.store.inbox_counts()).get("pending", 0)
    deliveries = getattr(app.store, "deliveries", None)  # absent before raw deliveries
    if deliveries is not None:
        pending += (await deliveries.counts()).get("pending", 0)
    return pending


class LoopLag:
    """How late the event loop runs a callback that is due: a task sleeps ``LAG_TICK`` over
    and over and records by how much each wake-up overshot. A request's handler (and each
    step of it: the read, the store's answer) waits about as long for its turn on the loop."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_TICK
            await asyncio.sleep(LAG_TICK)
            self.samples.append(max(0.0, loop.time() - due))

    def __enter__(self) -> Self:
        self._task = asyncio.create_task(self._watch())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def summary(self) -> tuple[float, float]:
        """The lag's p50 and p99 in ms."""
        lags = sorted(self.samples) or [0.0]
        return statistics.median(lags) * 1000, lags[max(0, int(len(lags) * 0.99) - 1)] * 1000


async def phase(
    app: Application,
    name: str,
    url: str,
    bodies: list[bytes],
    concurrency: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    turns, backlog = await answered(app), await waiting(app)
    spy = None
    if profile is not None:  # py-spy (pip install py-spy), sampling this process
        spy = await asyncio.create_subprocess_exec(
            shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(os.getpid()),
            "--format", "raw", "--threads", "--rate", "250", "--output", str(profile),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)  # attached
    requests = request_file(bodies)
    with LoopLag() as lag:
        cpu = time.process_time()
        result = await run_client(url, requests, concurrency)
        cpu = time.process_time() - cpu
    requests.unlink()
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await spy.wait()
    result.update(
        name=name,
        turns_per_s=(await answered(app) - turns) / result["elapsed"],
        backlog=f"{backlog}→{await waiting(app)}",
        lag=lag.summary(),
        server_cpu_ms=cpu * 1000 / len(bodies),
    )
    return result


async def run(
    kind: str, deliveries: int, concurrency: int, backlog: int, profile: Path | None = None
) -> dict[str, Any] | None:
    fake = FakeIntercom()
    await fake.start()
    try:
        async with scratch_database(kind) as url:
            if url is None:
                return None
            unique = deliveries - deliveries // 10
            queued = notifications(fake, backlog, "backlog")
            bodies = notifications(fake, unique, "timed")
            bodies += bodies[: deliveries - unique]  # Intercom's redeliveries
            settings = bench_settings(url, fake, concurrency)
            app = Application(settings)
            await upgrade(app.db.engine)
            bare, bare_port = await bare_app()
            try:
                async with app:
                    bot_url = f"http://127.0.0.1:{app.http_port}/webhooks/intercom"
                    bare_url = f"http://127.0.0.1:{bare_port}/webhooks/intercom"
                    load_before = loadavg()
                    await client(bot_url, queued, concurrency)  # the background work
                    phases = [
                        await phase(app, "bare aiohttp", bare_url, bodies, concurrency),
                        await phase(
                            app, "supportbot", bot_url, bodies, concurrency,
                            profile and profile.with_name(f"{profile.stem}-{kind}.txt"),
                        ),
                        await phase(app, "bare aiohttp", bare_url, bodies, concurrency),
                    ]
                    load_after = loadavg()
                    began = time.perf_counter()
                    while await waiting(app) or (await app.store.outbox_counts()).get("pending"):
                        if time.perf_counter() - began > SETTLE_SECONDS:
                            break
                        await asyncio.sleep(0.2)
                    drained = time.perf_counter() - began
                    inbox = await app.store.inbox_counts()
                    done = await answered(app)
            finally:
                await bare.cleanup()
    finally:
        await fake.close()
    return {
        "kind": kind,
        "phases": phases,
        "drained": drained,
        "inbox": inbox,
        "runs": done,
        "expected": backlog + unique,
        "load": (load_before, load_after),
    }


def report(results: list[dict[str, Any]], deliveries: int, concurrency: int, backlog: int) -> None:
    print(
        f"\nIntercom ingest beside a bare aiohttp app: {deliveries} signed deliveries per phase "
        f"(10% redeliveries), {concurrency} in flight, client in its own process; the bot "
        f"answers a backlog of {backlog} plus what it ingests (offline responder)"
    )
    header = [
        "database",
        "endpoint",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "of bare",
        "turns/s meanwhile",
        "loop lag p50/p99 ms",
        "CPU ms/delivery",
        "waiting",
        "statuses",
    ]
    rows = [header]
    summaries = []
    for r in results:
        bare_rate = statistics.mean(p["rate"] for p in r["phases"] if p["name"] != "supportbot")
        for p in r["phases"]:
            ratio = p["rate"] / bare_rate
            rows.append(
                [
                    r["kind"],
                    p["name"],
                    f"{p['rate']:,.0f}",
                    f"{p['p50']:.1f}",
                    f"{p['p99']:.1f}",
                    f"{ratio:.2f}",
                    f"{p['turns_per_s']:.0f}",
                    f"{p['lag'][0]:.1f}/{p['lag'][1]:.1f}",
                    f"{p['server_cpu_ms']:.2f}",
                    p["backlog"],
                    ",".join(f"{k}:{v}" for k, v in sorted(p["statuses"].items())),
                ]
            )
        bot = next(p for p in r["phases"] if p["name"] == "supportbot")
        met = (
            bot["rate"] >= TARGET_RATE
            and bot["p99"] < TARGET_P99_MS
            and bot["rate"] / bare_rate >= TARGET_RATIO
        )
        summaries.append(
            f"{r['kind']}: supportbot {bot['rate']:,.0f}/s, p99 {bot['p99']:.1f} ms, "
            f"{bot['rate'] / bare_rate:.2f} of bare aiohttp ({bare_rate:,.0f}/s) "
            f"[{'met' if met else 'not met'}]; answered {r['runs']}/{r['expected']} "
            f"({r['drained']:.0f} s after), inbox {r['inbox']}; load {r['load'][0]} → {r['load'][1]}"
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    for line in summaries:
        print(line)
    print(
        f"target: ≥ {TARGET_RATE:,.0f}/s, p99 < {TARGET_P99_MS:.0f} ms, "
        f"≥ {TARGET_RATIO} of a bare aiohttp app; every message answered once"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument(
        "--profile", type=Path, help="py-spy's raw samples of the supportbot phase to FILE-db.txt"
    )
    args = parser.parse_args()
    results = []
    for kind in args.databases:
        result = asyncio.run(
            run(kind, args.deliveries, args.concurrency, args.backlog, args.profile)
        )
        if result is None:
            print(f"{kind}: unreachable, skipped")
        else:
            results.append(result)
    report(results, args.deliveries, args.concurrency, args.backlog)


if __name__ == "__main__":
    main()
