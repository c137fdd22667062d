"""Intercom webhook ingest beside its ceiling, driven by wrk: signed notifications into the
daemon's ``POST /webhooks/intercom`` and into a bare aiohttp app (one route that reads the body
and answers 200), with the same wrk parameters, while the bot answers what it ingests.

wrk (a C load generator, ``apt install wrk``) runs in a process of its own and sends each of N
pre-generated, validly signed notifications once (``bench/ingest_wrk.lua``): every one a new
conversation, so none is a redelivery that the dedup would answer early. The Python client of
``bench/ingest_ceiling.py`` could not load even the bare app past 750–1,600/s on 2 cores; wrk
spends a fraction of that CPU per request.

The daemon runs whole, as ``supportbot serve`` runs it (``Application``: HTTP server, Intercom
connector, dispatcher on, the embedded offline responder answering, replies sent to a fake
Intercom on 127.0.0.1 in a process of its own, as Intercom is remote). The bare app is served
from the same process and event loop, so it meets the same background work. Before the timed phases a backlog of notifications
is posted (untimed); then, with it still being answered: the bare app, supportbot, the bare app
again, each for the same duration. The ratio is supportbot's rate over the mean of the two bare
runs. Afterwards the store is checked: every acknowledged delivery stored (rows counted by
notification id), none stored twice, and every stored delivery parsed into one inbox message.

    PYTHONPATH=.:bench python bench/ingest_wrk.py [--duration 5] [--connections 32]
        [--threads 1] [--backlog 1000] [--runs 1] [--databases sqlite postgresql]

PostgreSQL runs when reachable at ``$SUPPORTBOT_BENCH_PG_URL`` (a scratch database is made and
dropped). On a shared machine the figures are indicative only: the load average is printed.
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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest_ceiling import (
    SECRET,
    TARGET_P99_MS,
    TARGET_RATE,
    TARGET_RATIO,
    LoopLag,
    answered,
    bare_app,
    bench_settings,
    client,
    loadavg,
    notifications,
)
from sqlalchemy import select
from support import scratch_database

from bot.app import Application
from bot.store.migrate import upgrade
from bot.store.schema import deliveries
from connectors.intercom.webhook import sign
from tests.fakes.intercom import FakeIntercom

SCRIPT = Path(__file__).with_name("ingest_wrk.lua")
# Bodies per second of duration: above any rate reached here, so wrk never runs out.
BODIES_PER_SECOND = 8000
PARSE_SECONDS = 120.0


def request_file(bodies: list[bytes], path: Path) -> None:
    """wrk's requests: per line the signature Intercom would send, a tab, the body."""
    with path.open("w") as file:
        for body in bodies:
            file.write(f"{sign(SECRET.encode(), body)}\t{body.decode()}\n")


async def wrk(url: str, requests: Path, threads: int, connections: int, duration: float) -> dict[str, Any]:
    """One wrk run over ``requests``; its summary (``done`` in the Lua script) as a dict."""
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s",
        "--timeout", "10s", "-s", str(SCRIPT), url, "--", str(requests), str(threads),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed: {err.decode().strip()[-500:]} {out.decode()[-500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    return result


async def stored_keys(app: Application) -> list[str]:
    query = select(deliveries.c.dedup_key).where(deliveries.c.channel == "intercom")
    return list(await app.db.run_read(lambda c: list(c.execute(query).scalars())))


async def inbox_rows(app: Application) -> int:
    return sum((await app.store.inbox_counts()).values())


async def phase(
    app: Application, name: str, url: str, requests: Path, count: int, args: argparse.Namespace,
    profile: Path | None = None,
) -> dict[str, Any]:
    turns = await answered(app)
    spy = None
    if profile is not None:  # py-spy (pip install py-spy), sampling this process
        spy = await asyncio.create_subprocess_exec(
            shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(os.getpid()),
            "--format", "raw", "--rate", "250", "--output", str(profile),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)  # attached
    shed = app.shedding.shed_seconds()
    with LoopLag() as lag:
        cpu = time.process_time()
        result = await wrk(url, requests, args.threads, args.connections, args.duration)
        cpu = time.process_time() - cpu
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await spy.wait()
    result.update(
        name=name,
        turns_per_s=(await answered(app) - turns) / (result["duration_us"] / 1e6),
        lag=lag.summary(),
        server_cpu_ms=cpu * 1000 / max(1, result["requests"]),
        exhausted=result["requests"] >= count,
        shed=app.shedding.shed_seconds() - shed,
    )
    return result


@dataclass(frozen=True)
class RemoteIntercom:
    """The fake Intercom in its process of its own, as ``bench_settings`` needs it."""

    token: str
    base_url: str


async def serve_fake(directory: Path, backlog: int, count: int) -> None:
    """``--serve-fake``: a fake Intercom for the daemon to reply to, in a process of its own
    (as Intercom is remote: its request and response checks against Intercom's OpenAPI spec
    took over a quarter of the daemon's event loop when it ran beside it). Writes the backlog's
    bodies and the timed requests to ``directory``, prints where it listens, and serves until
    its standard input closes."""
    fake = FakeIntercom()
    await fake.start()
    backlog_bodies = [b.decode() for b in notifications(fake, backlog, "backlog")]
    (directory / "backlog.json").write_text(json.dumps(backlog_bodies))
    request_file(notifications(fake, count, "timed"), directory / "timed.tsv")
    print(json.dumps({"token": fake.token, "base_url": fake.base_url}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await fake.close()


@asynccontextmanager
async def remote_fake(directory: Path, backlog: int, count: int) -> AsyncIterator[RemoteIntercom]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-fake", str(directory), str(backlog), str(count),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError("the fake Intercom did not start")
        yield RemoteIntercom(**json.loads(line))
    finally:
        process.stdin.close()
        await process.wait()


async def run(kind: str, args: argparse.Namespace, work: Path) -> dict[str, Any] | None:
    count = int(BODIES_PER_SECOND * args.duration)
    directory = Path(tempfile.mkdtemp(dir=work))
    async with remote_fake(directory, args.backlog, count) as fake, scratch_database(kind) as url:
        if url is None:
            return None
        queued = [b.encode() for b in json.loads((directory / "backlog.json").read_text())]
        requests = directory / "timed.tsv"
        with requests.open() as file:
            timed_ids = {json.loads(line.split("\t", 1)[1])["id"] for line in file}
        app = Application(bench_settings(url, fake, args.connections))  # type: ignore[arg-type]
        await upgrade(app.db.engine)
        bare, bare_port = await bare_app()
        try:
            async with app:
                bot_url = f"http://127.0.0.1:{app.http_port}/webhooks/intercom"
                bare_url = f"http://127.0.0.1:{bare_port}/webhooks/intercom"
                load_before = loadavg()
                await client(bot_url, queued, args.connections)  # the background work
                phases = [
                    await phase(app, "bare aiohttp", bare_url, requests, count, args),
                    await phase(
                        app, "supportbot", bot_url, requests, count, args,
                        args.profile and args.profile.with_name(f"{args.profile.stem}-{kind}.txt"),
                    ),
                    await phase(app, "bare aiohttp", bare_url, requests, count, args),
                ]
                load_after = loadavg()
                keys = await stored_keys(app)
                began = time.perf_counter()
                while ((await app.store.deliveries.counts()).get("pending")
                       and time.perf_counter() - began < PARSE_SECONDS):
                    await asyncio.sleep(0.2)
                parsed = (await app.store.deliveries.counts()).get("done", 0)
                inbox = await inbox_rows(app)
                done = await answered(app)
        finally:
            await bare.cleanup()
    bot = phases[1]
    return {
        "kind": kind,
        "phases": phases,
        "acked": bot["requests"] - bot["status"],
        "stored": len(timed_ids.intersection(keys)),
        "stored_rows": len(keys),
        "distinct_rows": len(set(keys)),
        "expected_rows": args.backlog + len(timed_ids.intersection(keys)),
        "parsed": parsed,
        "inbox": inbox,
        "answered": done,
        "load": (load_before, load_after),
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nIntercom ingest beside a bare aiohttp app, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration:g}s in its own process, each request a new signed notification; "
        f"the bot answers a backlog of {args.backlog} plus what it ingests (offline responder)"
    )
    header = ["database", "run", "endpoint", "requests/s", "p50 ms", "p99 ms", "of bare",
              "turns/s meanwhile", "shedding s", "loop lag p50/p99 ms", "CPU ms/request", "non-2xx", "errors"]
    rows = [header]
    summaries = []
    for number, r in results:
        bare_rate = statistics.mean(p["rate"] for p in r["phases"] if p["name"] != "supportbot")
        for p in r["phases"]:
            rows.append([
                r["kind"], str(number), p["name"] + (" (ran out of bodies)" if p["exhausted"] else ""),
                f"{p['rate']:,.0f}", f"{p['p50_us'] / 1000:.1f}", f"{p['p99_us'] / 1000:.1f}",
                f"{p['rate'] / bare_rate:.2f}", f"{p['turns_per_s']:.0f}", f"{p['shed']:.1f}",
                f"{p['lag'][0]:.1f}/{p['lag'][1]:.1f}", f"{p['server_cpu_ms']:.3f}",
                str(p["status"]), str(p["errors"]),
            ])
        bot = r["phases"][1]
        ratio = bot["rate"] / bare_rate
        met = (bot["rate"] >= TARGET_RATE and bot["p99_us"] / 1000 < TARGET_P99_MS
               and ratio >= TARGET_RATIO and not bot["exhausted"] and not bot["status"])
        durable = (r["stored"] >= r["acked"] and r["distinct_rows"] == r["stored_rows"]
                   and r["stored_rows"] == r["expected_rows"])
        summaries.append(
            f"{r['kind']} run {number}: supportbot {bot['rate']:,.0f}/s, p99 "
            f"{bot['p99_us'] / 1000:.1f} ms, {ratio:.2f} of bare aiohttp ({bare_rate:,.0f}/s) "
            f"[{'met' if met else 'not met'}]; stored {r['stored']} of {r['acked']} acknowledged "
            f"(rows {r['stored_rows']}, distinct {r['distinct_rows']}, backlog + timed "
            f"{r['expected_rows']}) [{'none lost' if durable else 'LOST OR DOUBLED'}]; parsed "
            f"{r['parsed']}, inbox rows {r['inbox']}, answered {r['answered']} so far; load "
            f"{r['load'][0]} → {r['load'][1]}"
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    for line in summaries:
        print(line)
    print(f"target: ≥ {TARGET_RATE:,.0f}/s, p99 < {TARGET_P99_MS:.0f} ms, ≥ {TARGET_RATIO} of a "
          "bare aiohttp app; every acknowledged delivery stored once")
    print("stored: the timed notifications' ids found among the stored deliveries (wrk may stop "
          "with requests in flight: stored ≥ acknowledged); CPU: the server process's, per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk's threads")
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1, help="runs per database, alternated")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])
    parser.add_argument(
        "--profile", type=Path, help="py-spy's raw samples of the supportbot phase to FILE-db.txt"
    )
    parser.add_argument("--serve-fake", nargs=3, metavar=("DIR", "BACKLOG", "COUNT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        directory, backlog, count = args.serve_fake
        asyncio.run(serve_fake(Path(directory), int(backlog), int(count)))
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt install wrk)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(1, args.runs + 1):
            for kind in args.databases:
                result = asyncio.run(run(kind, args, Path(tmp)))
                if result is None:
                    print(f"{kind}: unreachable, skipped")
                else:
                    results.append((number, result))
                print(f"{kind} run {number}: done, load {loadavg()}", flush=True)
    report(results, args)


if __name__ == "__main__":
    main()
