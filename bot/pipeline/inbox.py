"""The inbox's group commit: deliveries that arrive together share one write transaction.

A webhook is acknowledged only once its delivery is durable, so under load every caller would
otherwise wait for its own commit. Here the first caller to find no write in progress writes
every queued delivery at once (``bot.store.inbox.Inbox.write_deliveries``), and each caller
learns whether its own messages were new. A delivery is a unit: never split between commits,
so no turn can start on part of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.domain import InboundMessage
from bot.store.inbox import Inbox

# Rows per group-commit insert (7 bound values each; far below SQLite's variable limit). A
# delivery is never split between commits, so one larger than this is written on its own.
INBOX_BATCH = 256


@dataclass(slots=True)
class _PendingPut:
    """One delivery waiting for the next group commit: its messages' rows, oldest first, and
    whether each was new."""

    rows: list[dict[str, Any]]
    done: asyncio.Future[list[bool]]


class InboxWriter:
    """Stores deliveries durably, group-committing concurrent ones."""

    def __init__(self, inbox: Inbox):
        self._inbox = inbox
        self._queue: list[_PendingPut] = []
        self._lock = asyncio.Lock()
        self._flushes: set[asyncio.Task[None]] = set()

    async def put(self, message: InboundMessage, agent_slug: str) -> bool:
        """Store an inbound message durably; False when this delivery was already stored."""
        (new,) = await self.put_delivery([(message, agent_slug)])
        return new

    async def put_delivery(self, messages: Sequence[tuple[InboundMessage, str]]) -> list[bool]:
        """Store one delivery's messages (oldest first, each with its agent slug) durably and
        together; for each, False when it was already stored.

        Concurrent calls share one transaction (group commit). Only the delivery's newest
        message starts a turn: when that one was already stored (an earlier delivery carried
        it and started its turn), older messages new here are kept as skipped, never answered
        on their own. A webhook is acknowledged only after this returns.
        """
        if not messages:
            return []
        put = _PendingPut(
            rows=self._inbox.delivery_rows(messages),
            done=asyncio.get_running_loop().create_future(),
        )
        self._queue.append(put)
        async with self._lock:
            if not put.done.done():
                batch = self._take_batch()
                flush = asyncio.create_task(self._flush(batch), name="inbox-flush")
                self._flushes.add(flush)
                flush.add_done_callback(self._flushes.discard)
                # Shielded: a caller that goes away (client disconnect) must not abort the
                # write the other callers in the batch are waiting for.
                await asyncio.shield(flush)
        return await put.done

    def _take_batch(self) -> list[_PendingPut]:
        """Whole deliveries from the head of the queue, up to ``INBOX_BATCH`` rows (at least
        one delivery, however large)."""
        taken = rows = 0
        for put in self._queue:
            if taken and rows + len(put.rows) > INBOX_BATCH:
                break
            taken += 1
            rows += len(put.rows)
        batch = self._queue[:taken]
        del self._queue[:taken]
        return batch

    async def _flush(self, batch: list[_PendingPut]) -> None:
        try:
            news = await self._inbox.write_deliveries([put.rows for put in batch])
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else RuntimeError("inbox write cancelled")
            for put in batch:
                if not put.done.done():
                    put.done.set_exception(failure)
            raise
        for put, new in zip(batch, news):
            put.done.set_result(new)
