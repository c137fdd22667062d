"""Chunk vectors embedded in the background, so the daemon never waits for the model.

``serve`` comes up and answers by keywords at once; this worker embeds the chunks that have no
vector yet (a first start, a sync that brought new text, a model changed in the settings) in
batches, off the event loop (the local model runs in a worker thread, the OpenAI-compatible
backend is plain async HTTP), and stores each batch in one transaction as soon as it is done: a
restart keeps every finished batch, a stop mid-batch leaves no part of it. When a pass leaves
nothing missing, the knowledge base's dense side reloads the matrix and searches turn hybrid
(``bot.knowledge.vectors.DenseSide``: keywords only until every chunk of the current index has
its vector). Writes (files synced at start, a source synced at run time by its schedule or the
operator API) and a search that found vectors missing wake it; a pass that fails is retried
after ``RETRY_SECONDS``.

The one-off commands (``triage --once``, ``chat``, ``simulate``, ``eval``) run the same worker
and wait for its pass (``settled``) before their first turn: a sweep's answers are then the
daemon's steady-state (hybrid) answers, and the vectors stay stored for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select

from bot.knowledge.embeddings import EmbeddingError
from bot.knowledge.vectors import DenseSide, embedding_text, text_hash
from bot.store.database import Database
from bot.store.schema import kb_chunks

log = logging.getLogger(__name__)

# Chunks per model call and per stored transaction. Small enough that a stop waits for at most
# one short batch in the model's thread (about a second of CPU with the local model), large
# enough that the model's per-call cost is spread (the local model's throughput is flat from
# 16 up: bench/startup_embedding.py).
BATCH = 16
# After a failed pass (the backend down, the database away), the next try.
RETRY_SECONDS = 60.0

State = Literal["waiting", "embedding", "ready", "failed"]


@dataclass(frozen=True, slots=True)
class VectorProgress:
    """How far the vectors are: ``embedded`` of ``chunks`` distinct chunk texts have one.

    ``waiting`` before the first pass counted them, ``embedding`` while a pass runs, ``ready``
    when the last pass left nothing missing, ``failed`` when it stopped on an error (retried).
    """

    state: State
    model: str
    embedded: int = 0
    chunks: int = 0
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "state": self.state,
            "model": self.model,
            "embedded": self.embedded,
            "chunks": self.chunks,
        }
        if self.error is not None:
            data["error"] = self.error
        return data


class VectorBackfill:
    """Embeds the chunks without a vector, one named task per process; ``start`` / ``stop``."""

    def __init__(self, db: Database, dense: DenseSide, *, batch: int | None = None) -> None:
        self.db = db
        self.dense = dense
        self.batch = batch or BATCH
        self.progress = VectorProgress("waiting", dense.embedder.model)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while no pass is due or running
        self._task: asyncio.Task[None] | None = None
        dense.embed_in_background(self.wake)

    def wake(self) -> None:
        """Chunks may lack a vector: run a pass (after the running one, if any)."""
        self._idle.clear()
        self._wake.set()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the vector backfill is already running")
        self.wake()  # the first pass counts what the stored chunks lack
        self._task = asyncio.create_task(self._run(), name="knowledge-vectors")

    async def stop(self) -> None:
        """Cancel the running pass: the batch in flight is dropped, never half stored (the
        local model's thread finishes its batch and the result is discarded)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self.progress.state == "embedding":
            log.info("knowledge: embedding stopped at %d of %d chunks; the next start goes on",
                     self.progress.embedded, self.progress.chunks)

    async def settled(self) -> VectorProgress:
        """Wait until no pass is due or running (the vectors are complete, or the last pass
        failed), and say how far they are."""
        await self._idle.wait()
        return self.progress

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=RETRY_SECONDS)
            except TimeoutError:
                if self.progress.state != "failed":
                    continue
            self._wake.clear()
            try:
                await self.run_pass()
            except EmbeddingError as exc:  # the backend's answer, scrubbed of credentials
                log.warning("knowledge: embedding stopped, retrying in %.0f s: %s",
                            RETRY_SECONDS, exc)
                self._failed(str(exc))
            except Exception as exc:
                # Kept alive all the same (the database away, say): the daemon goes on by
                # keywords, and the pass is retried.
                log.exception("knowledge: embedding stopped, retrying in %.0f s", RETRY_SECONDS)
                self._failed(type(exc).__name__)
            finally:
                self.dense.vectors_stored()
            if not self._wake.is_set():
                self._idle.set()

    def _failed(self, error: str) -> None:
        done = self.progress
        self.progress = VectorProgress("failed", done.model, done.embedded, done.chunks, error)

    async def run_pass(self) -> int:
        """Embed and store every chunk text that has no vector; returns how many were."""
        store = self.dense.store
        model = store.embedder.model
        started_at = time.time()
        texts = await self._chunk_texts()
        stored = await store.hashes()
        missing = [(h, t) for h, t in texts.items() if h not in stored]
        done = len(texts) - len(missing)
        self.progress = VectorProgress("embedding", model, done, len(texts))
        if missing:
            log.info(
                "knowledge: embedding started: %d of %d chunks with %s, in the background",
                len(missing), len(texts), model,
            )
        clock = time.perf_counter()
        for start in range(0, len(missing), self.batch):
            part = missing[start : start + self.batch]
            await store.embed_and_store(part)
            done += len(part)
            self.progress = VectorProgress("embedding", model, done, len(texts))
        await store.prune([h for h in stored if h not in texts], before=started_at)
        self.progress = VectorProgress("ready", model, done, len(texts))
        if missing:
            log.info(
                "knowledge: embedding finished: %d chunks in %.1f s; search is hybrid",
                len(missing), time.perf_counter() - clock,
            )
        return len(missing)

    async def _chunk_texts(self) -> dict[str, str]:
        """Every chunk's embedded text by its hash (``vectors.text_hash``), hashed off the loop."""
        query = select(kb_chunks.c.title, kb_chunks.c.heading, kb_chunks.c.text)
        rows = await self.db.run_read(lambda conn: conn.execute(query).all())
        return await asyncio.to_thread(_by_hash, [(r.title, r.heading, r.text) for r in rows])


def _by_hash(rows: list[tuple[str, str, str]]) -> dict[str, str]:
    return {text_hash(t): t for t in (embedding_text(*row) for row in rows)}
