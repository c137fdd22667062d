"""Memory of a running daemon: its RSS with 100,000 (or a million) stored threads, and over a soak.

A scratch database (SQLite; ``--postgresql`` for the server at ``$SUPPORTBOT_BENCH_PG_URL``) is
seeded with ``--threads`` threads, each with its own smith, lane, delivery, finished run and
sent action (``bench/seeding.py``; a million take 2–3 min on SQLite, about 5 on PostgreSQL).
Then
``supportbot serve`` runs on it as a subprocess on the embedded defaults (offline responder,
bundled knowledge base, web widget), and ``--visitors`` web-chat visitors talk to it through the
HTTP API for ``--minutes``: each one takes a session, opens a conversation, asks three questions
and waits for each answer, then leaves and a new visitor comes (so smiths, threads and runs keep
growing, as in production). Every ``--every`` seconds the daemon's resident memory (VmRSS) is
read from ``/proc``.

It prints one row per sample and the verdict against DESIGN §11: at most 150 MB, and flat —
what the RSS grew from the end of the warm-up (the first fifth of the run) to the end.

    PYTHONPATH=.:bench python bench/memory.py [--threads 100000] [--minutes 30] [--visitors 8]
        [--embeddings auto|local|none] [--tree DIR]

``--embeddings`` sets ``[knowledge.embeddings] backend`` (unset: ``none``, as every bench sets
it in ``bench/support.py``, or ``$SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND``); with a
model, the RSS is also read when the chunk vectors are all embedded (``/healthz``), before the
visitors come. ``--tree DIR`` runs the daemon from another source tree (e.g. an export of
``main``: ``git archive main | tar -x -C /tmp/main-src``), for an A/B: alternate the runs.

Issue 17's target: ≤ 150 MB at 1M stored threads (``--threads 1000000``), flat.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from seeding import seed_store
from support import scratch_database

from bot.config import DatabaseSettings
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.store import Store

ROOT = Path(__file__).resolve().parents[1]
TARGET_MB = 150.0
QUESTIONS = (
    "How do I export my invoices?",
    "I forgot my password, how can I reset it?",
    "Is there an outage right now?",
    "How do I add a teammate to my account?",
    "Can I get a refund for last month?",
    "Where do I find my API key?",
)


async def seed(url: str, count: int) -> float:
    """``count`` finished threads (``bench/seeding.py``: each with its smith, lane, delivery,
    run and sent action); returns the seconds taken."""
    db = Database(DatabaseSettings(url=url))
    try:
        await upgrade(db.engine)
        agent = await Store(db).ensure_agent("support", "Support")
    finally:
        await db.dispose()
    return await seed_store(url, agent.id, "support", count, "analyzed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The process's resident memory now (``VmHWM``: the most it has had)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


@dataclass
class Load:
    turns: int = 0
    visitors: int = 0
    errors: int = 0
    last_error: str = ""


async def visitor_loop(base: str, load: Load, stop: asyncio.Event, number: int) -> None:
    """Visitors one after the other: session, conversation, three questions, leave."""
    asked = number
    while not stop.is_set():
        try:
            # ``unsafe``: the session cookie comes from an IP address (127.0.0.1).
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(base_url=base, cookie_jar=jar) as http:
                async with http.post("/web/session", json={}) as response:
                    response.raise_for_status()
                async with http.post("/v1/conversations", json={}) as response:
                    response.raise_for_status()
                    conversation = (await response.json())["id"]
                for _ in range(3):
                    asked += 1
                    question = f"{QUESTIONS[asked % len(QUESTIONS)]} (#{asked})"
                    async with http.post(
                        f"/v1/conversations/{conversation}/messages",
                        json={"content": question, "stream": False},
                    ) as response:
                        response.raise_for_status()
                        await response.read()
                    load.turns += 1
                    if stop.is_set():
                        break
            load.visitors += 1
        except (aiohttp.ClientError, KeyError) as exc:
            load.errors += 1
            load.last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5)


async def soak(
    url: str,
    *,
    minutes: float,
    visitors: int,
    every: float,
    tmp: Path,
    embeddings: str | None,
    tree: Path,
) -> list[tuple[float, float, int]]:
    port = free_port()
    config = tmp / "supportbot.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n\n[http]\nport = {port}\n\n[log]\nlevel = "WARNING"\n',
        encoding="utf-8",
    )
    # The environment outranks the file, and bench/support.py sets the backend to "none".
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if embeddings:
        env["SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND"] = embeddings
    # Its log goes to a file: a pipe nobody reads would stall the daemon once full.
    log_path = tmp / "daemon.log"
    with log_path.open("w") as log_file:
        daemon = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            "--config",
            str(config),
            cwd=tmp,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
    base = f"http://127.0.0.1:{port}"
    samples: list[tuple[float, float, int]] = []
    load = Load()
    try:
        await wait_until_ready(base, daemon, log_path)
        print(f"RSS when ready: {rss_mb(daemon.pid):.1f} MB", flush=True)
        embedded = await wait_until_embedded(base, daemon)
        if embedded is not None:
            print(
                f"RSS when the chunk vectors are embedded: {rss_mb(daemon.pid):.1f} MB "
                f"({embedded:.1f} s after ready)",
                flush=True,
            )
        samples.append((0.0, rss_mb(daemon.pid), 0))
        print(
            f"{'minute':>7} {'RSS MB':>8} {'turns':>8} {'turns/s':>8} {'visitors':>9} {'errors':>7}"
        )
        print(f"{0.0:>7.1f} {samples[0][1]:>8.1f} {0:>8} {'':>8} {0:>9} {0:>7}", flush=True)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(visitor_loop(base, load, stop, n), name=f"visitor:{n}")
            for n in range(visitors)
        ]
        started = time.monotonic()
        last_turns, last_at = 0, started
        while time.monotonic() - started < minutes * 60:
            await asyncio.sleep(every)
            if daemon.returncode is not None:
                raise SystemExit(f"the daemon exited:\n{log_path.read_text()[-4000:]}")
            at = time.monotonic()
            rss = rss_mb(daemon.pid)
            samples.append(((at - started) / 60, rss, load.turns))
            rate = (load.turns - last_turns) / (at - last_at)
            last_turns, last_at = load.turns, at
            print(
                f"{(at - started) / 60:>7.1f} {rss:>8.1f} {load.turns:>8} {rate:>8.1f} "
                f"{load.visitors:>9} {load.errors:>7}",
                flush=True,
            )
        stop.set()
        await asyncio.gather(*tasks)
        # Between the samples too: loading the model, embedding the chunks, the soak.
        print(f"the daemon's highest RSS (VmHWM): {rss_mb(daemon.pid, 'VmHWM'):.1f} MB")
        if load.errors:
            print(f"errors: {load.errors} (last: {load.last_error})")
    finally:
        if daemon.returncode is None:
            daemon.terminate()
            try:
                await asyncio.wait_for(daemon.wait(), timeout=30)
            except TimeoutError:
                daemon.kill()
                await daemon.wait()
    return samples


async def wait_until_ready(base: str, daemon: asyncio.subprocess.Process, log_path: Path) -> None:
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if daemon.returncode is not None:
                raise SystemExit(f"the daemon exited:\n{log_path.read_text()[-4000:]}")
            try:
                async with http.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the daemon did not get ready in 120 s")


async def wait_until_embedded(base: str, daemon: asyncio.subprocess.Process) -> float | None:
    """Seconds until ``/healthz`` says every chunk has its vector; None with no model."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - started < 600:
            if daemon.returncode is not None:
                raise SystemExit("the daemon exited while embedding")
            async with http.get(f"{base}/healthz") as response:
                body = await response.json()
            vectors = body.get("knowledge", {}).get("vectors")
            if vectors is None:
                return None
            if vectors.get("state") == "ready":
                return time.monotonic() - started
            await asyncio.sleep(0.2)
    raise SystemExit("the chunk vectors were not embedded in 600 s")


async def run(args: argparse.Namespace) -> None:
    kind = "postgresql" if args.postgresql else "sqlite"
    async with scratch_database(kind) as url:
        if url is None:
            raise SystemExit("PostgreSQL is not reachable at $SUPPORTBOT_BENCH_PG_URL")
        seconds = await seed(url, args.threads)
        print(
            f"{kind}: seeded {args.threads:,} threads (bench/seeding.py) in "
            f"{seconds:.1f} s; {args.visitors} visitors for {args.minutes:g} min\n",
            flush=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            samples = await soak(
                url,
                minutes=args.minutes,
                visitors=args.visitors,
                every=args.every,
                tmp=Path(tmp),
                embeddings=args.embeddings,
                tree=args.tree.resolve(),
            )
    peak = max(rss for _, rss, _ in samples)
    warm = [s for s in samples if s[0] >= args.minutes / 5]
    start_rss = warm[0][1] if warm else samples[0][1]
    growth = samples[-1][1] - start_rss
    turns = samples[-1][2]
    print(
        f"\nRSS: {samples[0][1]:.1f} MB ready, {start_rss:.1f} MB after the warm-up, "
        f"{samples[-1][1]:.1f} MB at the end, peak {peak:.1f} MB "
        f"(target ≤ {TARGET_MB:.0f} MB: {'met' if peak <= TARGET_MB else 'NOT met'})"
    )
    print(
        f"growth after the warm-up: {growth:+.1f} MB over {turns:,} turns in total "
        f"({growth / max(1e-9, args.minutes * 0.8) * 10:+.2f} MB per 10 min)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=100_000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument("--embeddings", choices=("auto", "local", "none"), default=None,
                        help="[knowledge.embeddings] backend (unset: none, or "
                             "$SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND)")
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the source tree the daemon runs from (default: this one)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
