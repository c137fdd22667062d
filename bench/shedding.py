"""Load shedding costs nothing while the process keeps up: turns at a steady webhook rate with a
slow remote model, shedding as configured beside shedding off (``pipeline.shed_lag_ms = 0``).

Signed Intercom notifications (each a new conversation) are posted at a steady rate, open loop,
to the daemon run whole (HTTP server, Intercom connector, dispatcher, outbox; the fake Intercom
in a process of its own, as in ``bench/ingest_wrk.py``); every turn calls an OpenAI-compatible
model that takes ``--latency`` seconds to answer (the scripted model server, in a process of its
own). Printed per rate and setting: turns in flight (the dispatcher's running turns, sampled
every 5 ms while webhooks arrive: mean and most), answer latency (notification posted → its
run committed: p50, p95, max), the webhooks' p99 acknowledgement, and how long shedding was
engaged. Turns wait on the model, not on the CPU, so the loop does not lag and shedding should
never engage: the two settings should match.

    PYTHONPATH=.:bench python bench/shedding.py [--rates 10 30] [--seconds 10] [--latency 0.5]
        [--concurrency 16] [--settings default off]

Run from a tree without load shedding, ``--settings default`` measures that tree as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from ingest_ceiling import bench_settings
from ingest_wrk import remote_fake
from sqlalchemy import select
from support import scratch_database

from bot.app import Application
from bot.config import Settings
from bot.store.migrate import upgrade
from bot.store.schema import runs, threads

SAMPLE = 0.005
SETTLE_SECONDS = 60.0


async def serve_model(latency: float) -> None:
    """``--serve-model``: the scripted model, answering every call after ``latency`` seconds."""
    from tests.fakes.model_server import RecordedRequest, ScriptedModelServer, ScriptedReply

    async def rule(request: RecordedRequest) -> ScriptedReply:
        await asyncio.sleep(latency)
        return ScriptedReply.say("You can reset your password from the sign-in page.")

    async with ScriptedModelServer(rule=rule) as server:
        print(json.dumps({"url": server.url}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def model_process(latency: float) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-model", str(latency),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        raise RuntimeError("the model server did not start")
    return process, json.loads(line)["url"]


def settings_for(url: str, fake: Any, model_url: str, concurrency: int, setting: str) -> Settings:
    base = bench_settings(url, fake, 32).model_dump()
    base["model"] = {"provider": "openai", "base_url": model_url, "api_key": "bench-key",
                     "name": "scripted", "stream": False}
    base["pipeline"] = {**base["pipeline"], "concurrency": concurrency}
    if setting == "off":
        base["pipeline"]["shed_lag_ms"] = 0.0
    return Settings.model_validate(base)


async def one(
    kind: str, rate: float, args: argparse.Namespace, setting: str, model_url: str, work: Path
) -> dict[str, Any] | None:
    count = int(rate * args.seconds)
    directory = Path(tempfile.mkdtemp(dir=work))
    async with remote_fake(directory, 0, count) as fake, scratch_database(kind) as url:
        if url is None:
            return None
        lines = (directory / "timed.tsv").read_text().splitlines()[:count]
        requests = [(line.split("\t", 1)[0], line.split("\t", 1)[1].encode()) for line in lines]
        app = Application(settings_for(url, fake, model_url, args.concurrency, setting))
        await upgrade(app.db.engine)
        posted: dict[str, float] = {}
        acks: list[float] = []
        in_flight: list[int] = []
        async with app, aiohttp.ClientSession() as session:
            endpoint = f"http://127.0.0.1:{app.http_port}/webhooks/intercom"

            async def post(signature: str, body: bytes) -> None:
                item = json.loads(body)["data"]["item"]["id"]
                began = time.perf_counter()
                posted[f"intercom:{item}"] = time.time()
                async with session.post(endpoint, data=body, headers={
                    "Content-Type": "application/json", "X-Hub-Signature": signature,
                }) as response:
                    await response.read()
                    assert response.status == 200, response.status
                acks.append(time.perf_counter() - began)

            async def sample() -> None:
                while True:
                    in_flight.append(app.dispatcher.busy)
                    await asyncio.sleep(SAMPLE)

            shedding = getattr(app, "shedding", None)
            shed = shedding.shed_seconds() if shedding is not None else 0.0
            sampler = asyncio.create_task(sample())
            loop = asyncio.get_running_loop()
            start = loop.time()
            tasks = []
            for n, (signature, body) in enumerate(requests):
                await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
                tasks.append(asyncio.create_task(post(signature, body)))
            await asyncio.gather(*tasks)
            sampler.cancel()
            shed = (shedding.shed_seconds() - shed) if shedding is not None else float("nan")
            query = select(threads.c.external_id, runs.c.finished_at).join(
                threads, threads.c.id == runs.c.thread_id
            )
            began = time.perf_counter()
            while True:
                done = await app.db.run_read(lambda c: list(c.execute(query)))
                if len(done) >= count or time.perf_counter() - began > SETTLE_SECONDS:
                    break
                await asyncio.sleep(0.1)
    latency = sorted(finished - posted[external] for external, finished in done)
    acks.sort()
    return {
        "kind": kind, "rate": rate, "setting": setting, "answered": len(done), "count": count,
        "in_flight": (statistics.mean(in_flight), max(in_flight)),
        "latency": (statistics.median(latency), latency[int(len(latency) * 0.95) - 1], latency[-1]),
        "ack_p99": acks[int(len(acks) * 0.99) - 1] * 1000,
        "shed": shed,
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    process, model_url = await model_process(args.latency)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeat):
                for kind in args.databases:
                    for rate in args.rates:
                        for setting in args.settings:
                            result = await one(kind, rate, args, setting, model_url, Path(tmp))
                            if result is not None:
                                results.append(result)
                                print(f"{kind} {rate:g}/s {setting}: done", flush=True)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        await process.wait()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", nargs="+", type=float, default=[10.0, 30.0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.5, help="the model's, per call (s)")
    parser.add_argument("--concurrency", type=int, default=16, help="pipeline.concurrency")
    parser.add_argument("--settings", nargs="+", default=["default", "off"],
                        choices=["default", "off"])
    parser.add_argument("--databases", nargs="+", default=["sqlite"],
                        choices=["sqlite", "postgresql"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--serve-model", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_model is not None:
        asyncio.run(serve_model(args.serve_model))
        return
    results = asyncio.run(run(args))
    print(f"\nturns at a steady webhook rate, model {args.latency:g} s a call, concurrency "
          f"{args.concurrency}, {args.seconds:g} s of webhooks")
    header = ["database", "webhooks/s", "shedding", "answered", "in flight mean/most",
              "answer p50/p95/max s", "ack p99 ms", "engaged s"]
    rows = [header] + [[
        r["kind"], f"{r['rate']:g}", r["setting"], f"{r['answered']}/{r['count']}",
        f"{r['in_flight'][0]:.1f}/{r['in_flight'][1]}",
        "/".join(f"{x:.2f}" for x in r["latency"]), f"{r['ack_p99']:.1f}", f"{r['shed']:.1f}",
    ] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
