"""What the local embeddings backend costs: all-MiniLM-L6-v2 run in numpy (``bot.knowledge.minilm``,
what ``backend = "local"`` runs) or through sentence-transformers on PyTorch (what it ran
before; the same call, ``encode(texts, batch_size=64, normalize_embeddings=True)``).

One backend per process, so that its peak resident memory is its own; alternate runs of the two
for an A/B on a shared machine (and read the CPU seconds: wall time there is mostly waiting for
a core). Prints:

- ``load``: seconds to load the model (imports included);
- ``bundled KB``: seconds to embed every chunk of the bundled example knowledge base, as
  ``bot.knowledge.vectors`` embeds them (title, heading path, text);
- ``per chunk``: seconds per chunk over ``--sample`` chunks of the synthetic help center of
  ``bench/knowledge_search.py`` (1,200-character chunks, as ``bench/retrieval.py`` builds its
  10,000), and that × 10,000: the time to embed ``bench/retrieval.py``'s corpus, extrapolated
  (embedding all of it takes tens of minutes on a busy 2-core machine);
- ``query p50/p95``: milliseconds to embed one short customer question, one at a time, as a
  search does, and the CPU seconds per question (``time.process_time``: all threads);
- ``RSS``: the process's resident memory (``VmRSS``, Linux) before the model is loaded (its
  libraries imported: what the rest of a daemon would hold), after, after embedding the
  bundled KB and after the questions, each with what it adds to the first;
- ``peak RSS``: the process's peak resident memory (``ru_maxrss``).

    python bench/local_embeddings.py --backend numpy|sentence-transformers
                                     [--sample 300] [--queries 200]

sentence-transformers is not a supportbot dependency: run that backend in an environment that
has it (see ``bench/minilm_equivalence.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from knowledge_search import generate, queries
from support import KEYWORD_ONLY

from bot.config import BUNDLED_KNOWLEDGE, DatabaseSettings, KnowledgeSettings
from bot.knowledge import KnowledgeBase, vectors
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.schema import kb_chunks

Encode = Callable[[Sequence[str]], np.ndarray]


def resident_mb() -> float:
    """The process's resident memory now (``VmRSS``), or NaN where /proc has none."""
    try:
        status = Path("/proc/self/status").read_text(encoding="utf-8")
    except OSError:
        return math.nan
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def import_backend(backend: str) -> None:
    """The backend's libraries, so that the RSS before loading the model counts them."""
    if backend == "numpy":
        import threadpoolctl  # noqa: F401

        import bot.knowledge.minilm  # noqa: F401
    else:
        import sentence_transformers  # noqa: F401


def load(backend: str) -> Encode:
    if backend == "numpy":
        from bot.knowledge.minilm import MiniLM

        model = MiniLM.bundled()
        return lambda texts: model.encode(texts, batch_size=64)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from bot.knowledge.minilm import model_directory

    st = SentenceTransformer(str(model_directory()), device="cpu", local_files_only=True)
    return lambda texts: st.encode(
        list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
    )


async def chunk_texts(corpus: Path, tmp: Path) -> list[str]:
    """The texts ``bot.knowledge.vectors`` would embed for ``corpus``'s chunks."""
    db = Database(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp}/chunks.db"))
    try:
        await upgrade(db.engine)
        await KnowledgeBase(db, KnowledgeSettings(chunk_chars=1200, embeddings=KEYWORD_ONLY)).ingest([corpus])
        async with db.read() as conn:
            rows = (
                await conn.execute(select(kb_chunks.c.title, kb_chunks.c.heading, kb_chunks.c.text))
            ).all()
        return [vectors.embedding_text(*row) for row in rows]
    finally:
        await db.dispose()


def timed(encode: Encode, texts: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) to embed ``texts``."""
    started, cpu = time.perf_counter(), time.process_time()
    encode(texts)
    return time.perf_counter() - started, time.process_time() - cpu


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["numpy", "sentence-transformers"], required=True)
    parser.add_argument("--sample", type=int, default=300, help="synthetic chunks embedded")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="local-embeddings-") as name:
        tmp = Path(name)
        bundled = await chunk_texts(BUNDLED_KNOWLEDGE, tmp)
        corpus = tmp / "corpus"
        corpus.mkdir()
        vocabulary = generate(corpus, args.sample)
        synthetic = (await chunk_texts(corpus, tmp))[: args.sample]
        questions = [q for q in queries(vocabulary, args.queries * 2) if q.strip()]
        questions = questions[: args.queries]

    started = time.perf_counter()
    import_backend(args.backend)
    resident = [("before the model", resident_mb())]
    encode = load(args.backend)
    loaded = time.perf_counter() - started
    encode(["warm up"])
    resident.append(("after loading it", resident_mb()))
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kb_seconds, kb_cpu = timed(encode, bundled)
    resident.append((f"after the {len(bundled)} KB chunks", resident_mb()))
    sample_seconds, sample_cpu = timed(encode, synthetic)
    per_chunk, cpu_per_chunk = sample_seconds / len(synthetic), sample_cpu / len(synthetic)
    latencies = []
    cpu_started = time.process_time()
    for q in questions:
        started = time.perf_counter()
        encode([q])
        latencies.append((time.perf_counter() - started) * 1000)
    cpu_per_query = (time.process_time() - cpu_started) / len(questions) * 1000
    resident.append((f"after {len(questions)} questions", resident_mb()))
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * (len(ordered) - 1)))]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.backend}: {len(bundled)} bundled KB chunks, {len(synthetic)} synthetic chunks")
    print(f"  load              {loaded:8.1f} s, peak RSS after it {loaded_mb:.0f} MB")
    print(f"  bundled KB        {kb_seconds:8.1f} s wall {kb_cpu:8.1f} s CPU")
    print(f"  per chunk         {per_chunk * 1000:8.1f} ms wall {cpu_per_chunk * 1000:8.1f} ms CPU")
    print(
        f"  10,000 chunks     {per_chunk * 10_000:8.0f} s wall {cpu_per_chunk * 10_000:8.0f} s CPU"
    )
    print(f"  query p50 / p95   {statistics.median(latencies):8.1f} / {p95:.1f} ms wall")
    print(f"  CPU per query     {cpu_per_query:8.1f} ms")
    for label, mb in resident:
        print(f"  RSS {label:24} {mb:6.0f} MB  {mb - resident[0][1]:+5.0f} MB")
    print(f"  peak RSS          {peak_mb:8.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
