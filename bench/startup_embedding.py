"""A first ``supportbot serve`` with the local embeddings model: how long until ``/healthz``
answers 200, and what a keyword turn costs while the chunk vectors are embedded behind it.

Each run starts the real daemon in a fresh directory (a new SQLite database: a first start)
with ``[knowledge.embeddings] backend = "local"``, from a source tree: ``--before`` (e.g. an
export of ``main``: ``git archive main | tar -x -C /tmp/main-src``) and this one, alternated
(before, after, before, after …). Two knowledge bases: the bundled example and a synthetic
help center of ``--chunks`` chunks (``bench/knowledge_search.py``'s generator).

Per run: seconds and the daemon's CPU seconds from spawn to ``/healthz`` 200; then ``--turns``
web turns one after another (the offline responder, so by keywords while vectors are missing),
their p50 while the embedding runs and once it is done; seconds until the vectors are ready.
For the synthetic knowledge base the tree that embeds in the background is also stopped
mid-embedding (SIGTERM: seconds to exit, exit code, vectors kept) and started again (how many
vectors the second start already had).

    PYTHONPATH=. python bench/startup_embedding.py --before /tmp/main-src [--chunks 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from knowledge_search import generate  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "bot" / "knowledge" / "example"
QUESTION = "How do I reset my password?"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    tree: str
    kb: str
    up_s: float = 0.0
    up_cpu_s: float = 0.0
    ready_s: float | None = None
    state_at_up: str = "-"
    turns_embedding: list[float] = field(default_factory=list)
    turns_idle: list[float] = field(default_factory=list)
    stop_s: float | None = None  # SIGTERM mid-embedding to exit; then ready_s is the restart's
    stop_code: int | None = None
    kept: int | None = None
    restart_had: int | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Serve:
    """One ``supportbot serve`` of ``tree`` in ``folder``."""

    def __init__(self, tree: Path, folder: Path, kb: Path, backend: str = "local") -> None:
        self.tree, self.folder, self.port = tree, folder, free_port()
        self.config = folder / "supportbot.toml"
        self.config.write_text(
            f'[database]\nurl = "sqlite+aiosqlite:///{folder / "bot.db"}"\n\n'
            f"[http]\nport = {self.port}\n\n"
            f'[knowledge]\npaths = ["{kb}"]\n\n[knowledge.embeddings]\nbackend = "{backend}"\n\n'
            '[log]\nlevel = "INFO"\n',
            encoding="utf-8",
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.asked = 0  # every question is new: the runner's 30-second search cache never hits

    async def start(self) -> tuple[float, float]:
        """Spawn; (seconds, CPU seconds) until /healthz answers 200."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
        env["PYTHONPATH"] = str(self.tree)
        started = time.monotonic()
        with (self.folder / "daemon.log").open("a") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "serve", "--config", str(self.config),
                cwd=self.folder, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.returncode is not None:
                    raise SystemExit((self.folder / "daemon.log").read_text()[-3000:])
                try:
                    async with http.get(f"{self.base}/healthz") as response:
                        if response.status == 200:
                            return time.monotonic() - started, cpu_seconds(self.process.pid)
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.01)

    async def health(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.base}/healthz") as response:
            body: dict[str, Any] = await response.json()
            return body

    async def vectors(self) -> dict[str, Any]:
        found: dict[str, Any] = (await self.health()).get("knowledge", {}).get("vectors", {})
        return found

    async def turns(self, count: int) -> list[tuple[float, bool]]:
        """``count`` turns in one web conversation: (ms, vectors were ready after it)."""
        out = []
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=self.base, cookie_jar=jar) as http:
            async with http.post("/web/session", json={}) as response:
                response.raise_for_status()
            async with http.post("/v1/conversations", json={}) as response:
                response.raise_for_status()
                conversation = (await response.json())["id"]
            for _ in range(count):
                self.asked += 1
                started = time.perf_counter()
                async with http.post(
                    f"/v1/conversations/{conversation}/messages",
                    json={"content": f"{QUESTION} ({self.asked})", "stream": False},
                ) as response:
                    response.raise_for_status()
                    await response.read()
                ms = (time.perf_counter() - started) * 1000
                out.append((ms, (await self.vectors()).get("state", "ready") == "ready"))
        return out

    async def until_ready(self) -> None:
        while (await self.vectors()).get("state", "ready") != "ready":
            await asyncio.sleep(0.2)

    async def until_embedded(self, share: float) -> dict[str, Any]:
        """Wait until the first pass counted the chunks and ``share`` of them have a vector."""
        while True:
            found = await self.vectors()
            if found.get("state") == "ready" or (
                found.get("state") == "embedding"
                and found["embedded"] >= share * found["chunks"]
            ):
                return found
            await asyncio.sleep(0.2)

    async def stop(self) -> tuple[float, int]:
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout=120)
        return time.monotonic() - started, code


def stored_vectors(folder: Path) -> tuple[int, int]:
    """(vectors stored, vectors whose bytes do not match their dimensions)."""
    with sqlite3.connect(folder / "bot.db") as conn:
        rows = conn.execute("SELECT dimensions, length(vector) FROM kb_embeddings").fetchall()
    return len(rows), sum(1 for dims, size in rows if size != 4 * dims)


async def one(
    tree: Path, label: str, kb: Path, kb_label: str, turns: int, stop_midway: bool,
    backend: str = "local",
) -> Run:
    run = Run(label, kb_label)
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        folder = Path(tmp)
        serve = Serve(tree, folder, kb, backend)
        started = time.monotonic()
        run.up_s, run.up_cpu_s = await serve.start()
        try:
            run.state_at_up = (await serve.vectors()).get("state", "-")
            for ms, ready in await serve.turns(turns):
                (run.turns_idle if ready else run.turns_embedding).append(ms)
            if stop_midway and (await serve.vectors()).get("state", "ready") != "ready":
                # SIGTERM a quarter of the way: the finished batches stay, the next start
                # goes on from them.
                await serve.until_embedded(0.25)
                run.stop_s, run.stop_code = await serve.stop()
                run.kept, broken = stored_vectors(folder)
                assert broken == 0, f"{broken} half-written vectors"
                serve = Serve(tree, folder, kb, backend)
                started = time.monotonic()
                await serve.start()
                run.restart_had = (await serve.until_embedded(0.0)).get("embedded")
            await serve.until_ready()
            run.ready_s = time.monotonic() - started
            if not run.turns_idle:
                run.turns_idle = [ms for ms, _ in await serve.turns(turns)]
        finally:
            if serve.process is not None and serve.process.returncode is None:
                await serve.stop()
    return run


def p50(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def show(runs: list[Run]) -> None:
    print(f"{'tree':<8} {'kb':<14} {'up s':>7} {'up CPU s':>9} {'state':>10} "
          f"{'ready s':>8} {'p50 embedding':>14} {'p50 idle':>9} {'stop s':>7} {'exit':>5} "
          f"{'kept':>6} {'restart had':>12}")
    for r in runs:
        print(f"{r.tree:<8} {r.kb:<14} {r.up_s:>7.2f} {r.up_cpu_s:>9.2f} {r.state_at_up:>10} "
              f"{(f'{r.ready_s:.1f}' if r.ready_s is not None else '-'):>8} "
              f"{p50(r.turns_embedding) + f' (n={len(r.turns_embedding)})':>14} "
              f"{p50(r.turns_idle):>9} "
              f"{(f'{r.stop_s:.2f}' if r.stop_s is not None else '-'):>7} "
              f"{(r.stop_code if r.stop_code is not None else '-')!s:>5} "
              f"{(r.kept if r.kept is not None else '-')!s:>6} "
              f"{(r.restart_had if r.restart_had is not None else '-')!s:>12}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="the source tree to compare (else only this)")
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--only", choices=["bundled", "synthetic"])
    parser.add_argument("--keyword-baseline", action="store_true",
                        help="also this tree with backend none: what a keyword turn costs idle")
    args = parser.parse_args()
    trees = [(args.before.resolve(), "before")] if args.before else []
    trees.append((ROOT, "after"))
    with tempfile.TemporaryDirectory(prefix="bench-kb-") as tmp:
        synthetic = Path(tmp)
        generate(synthetic, args.chunks)
        kbs = [(BUNDLED, "bundled"), (synthetic, f"{args.chunks} chunks")]
        runs: list[Run] = []
        for kb, kb_label in kbs:
            if args.only is not None and (args.only == "bundled") != (kb is BUNDLED):
                continue
            for _ in range(args.runs):
                for tree, label in trees:  # alternated: before, after, before, after
                    runs.append(await one(tree, label, kb, kb_label, args.turns, kb is synthetic))
                    show(runs[-1:])
                if args.keyword_baseline:
                    runs.append(await one(ROOT, "none", kb, kb_label, args.turns, False, "none"))
                    show(runs[-1:])
        print()
        show(runs)


if __name__ == "__main__":
    asyncio.run(main())
