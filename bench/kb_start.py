"""What a start pays for the knowledge base's search index: CPU seconds of the first search in
a fresh process, on a SQLite database where the knowledge base is already ingested.

Two knowledge bases: the bundled example, and about a thousand chunks (the nine held-out help
centers of ``tests/knowledge`` together). For each, one
start without a stored index (it analyses every chunk and stores the index beside the
database: what every start paid before ``bot.knowledge.stored_index``), then ``--runs`` starts
that load it. Each start is a fresh interpreter; the table prints the median CPU seconds.

    PYTHONPATH=. python bench/kb_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = sorted((ROOT / "tests" / "knowledge").glob("heldout*"))
QUESTION = "How do I get a refund for my subscription?"

START = """
import asyncio, json, sys, time
from bot.config import DatabaseSettings, KnowledgeSettings
from bot.knowledge import KnowledgeBase
from bot.store.database import Database

async def main():
    db = Database(DatabaseSettings(url=sys.argv[1]))
    kb = KnowledgeBase(db, KnowledgeSettings(embeddings={"backend": "none"}))
    before = time.process_time()
    await kb.search(sys.argv[2])
    cpu = time.process_time() - before
    await db.dispose()
    print(json.dumps({"cpu": cpu, "builds": getattr(kb, "index_builds", None)}))

asyncio.run(main())
"""


def thousand_chunks(folder: Path) -> Path:
    """The nine held-out help centers side by side: about a thousand chunks."""
    target = folder / "held-out"
    for source in HELD_OUT:
        shutil.copytree(source / "kb", target / source.name)
    return target


def ingest(url: str, paths: list[Path]) -> int:
    from bot.config import DatabaseSettings, KnowledgeSettings
    from bot.knowledge import KnowledgeBase
    from bot.store.database import Database
    from bot.store.migrate import upgrade

    async def run() -> int:
        db = Database(DatabaseSettings(url=url))
        await upgrade(db.engine)
        keyword_only = KnowledgeSettings.model_validate({"embeddings": {"backend": "none"}})
        report = await KnowledgeBase(db, keyword_only).ingest(paths)
        await db.dispose()
        return report.chunks

    return asyncio.run(run())


def start(url: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", START, url, QUESTION],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from bot.config import BUNDLED_KNOWLEDGE

    print(f"load average before: {Path('/proc/loadavg').read_text().split()[0]}")
    print(f"{'knowledge base':<28}{'chunks':>8}{'build (first start)':>22}{'load (median)':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, paths in (
            ("bundled example", [BUNDLED_KNOWLEDGE]),
            ("held-out help centers", [thousand_chunks(folder)]),
        ):
            database = folder / f"{name.replace(' ', '-')}.db"
            url = f"sqlite:///{database}"
            chunks = ingest(url, paths)
            Path(f"{database}.kb-index").unlink(missing_ok=True)
            first = start(url)
            warm = [start(url) for _ in range(args.runs)]
            cpu = sorted(run["cpu"] for run in warm)
            print(
                f"{name:<28}{chunks:>8}{first['cpu']:>20.3f} s{cpu[len(cpu) // 2]:>14.3f} s"
                f"   (indexes built: first start {first['builds']}, "
                f"{args.runs} later starts {sum(run['builds'] for run in warm)})"
            )
    print(f"load average after: {Path('/proc/loadavg').read_text().split()[0]}")


if __name__ == "__main__":
    main()
