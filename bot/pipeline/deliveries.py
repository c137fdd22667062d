"""Raw deliveries: stored before the acknowledgement, parsed into inbox messages after it.

A connector hands a verified webhook body to ``ConnectorRuntime.submit_raw``; it is stored
(one ignored-on-duplicate insert, group-committed with the deliveries that arrive beside it)
and the platform is answered. ``DeliveryParser`` — a claim loop in the same process — then
leases the stored deliveries oldest first and gives each to its connector's
``Connector.parse_delivery``, which turns it into inbox messages and handoff signals as the
webhook handler used to before answering. A conversation's deliveries are parsed one after
another in arrival order; different conversations side by side, so their inbox writes share
the inbox's group commit.

Nothing is lost between the acknowledgement and the parse: a delivery that was stored but not
parsed when the process died keeps its row, and once its lease runs out the next start (or
another replica) parses it. Parsing again after a crash between the inbox write and marking the
delivery parsed is harmless: the inbox keys messages by their platform ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from bot.config import PipelineSettings
from bot.connector import Connector, RawDelivery, UnreadableDelivery
from bot.pipeline.claims import ClaimLoop
from bot.store.deliveries import AckBatch, Deliveries, DeliveryClaim, StoredDelivery

log = logging.getLogger(__name__)

# Deliveries per claim; a claim's conversations are parsed side by side.
CLAIM_BATCH = 128
# Deliveries per claim while shedding load (``bot.pipeline.shedding``).
SHED_BATCH = 16
# Rows per group-commit insert.
WRITE_BATCH = 256
# Decoded payloads kept for the parser (this process's own deliveries, so it need not decode
# what the webhook handler already did): about what two claims take, as many as wait between
# an acknowledgement and its parse while the parser keeps up; beyond this (the oldest first)
# the stored body is decoded again (8 µs for an Intercom notification). Kept by the thousand
# while parsing is held back (``bot.pipeline.shedding``), they were the only thing that grew
# the heap during a flood of webhooks — 11 tracked objects each, 16,000 after 5 s — and every
# full collection walked them all, stalling every acknowledgement in flight longer each time
# (``bench/ingest_wrk.py``: 40, 90, 93, 121 ms, the requests that made its p99).
HANDED_OVER = 2 * CLAIM_BATCH
# Parsed deliveries are kept (without their bodies) this long as the redelivery dedup record.
KEEP_PARSED_SECONDS = 86_400.0
PRUNE_EVERY_SECONDS = 3_600.0

Row = TypeVar("Row")
Result = TypeVar("Result")


class _Lead:
    """What a queued caller is handed instead of its result when the write before its own
    has finished: it writes the queue now."""


_LEAD = _Lead()


@dataclass(slots=True)
class _Pending(Generic[Row, Result]):
    row: Row
    done: asyncio.Future[Result | _Lead]


class GroupCommit(Generic[Row, Result]):
    """Rows written by whoever finds no write in progress, together with every row queued
    meanwhile (at most ``batch`` per transaction); each caller gets its own row's result.

    One write at a time. Callers that arrive during a write wait on their own future; when the
    write ends, the first of them is handed the lead (``_LEAD``) and writes the queue at once,
    so the next write starts one hop through the event loop after the last one ended. (Queued
    on a lock instead, every caller of the finished batch took and gave back the lock in turn,
    one loop iteration each, before the next write could start: under turn load that chain
    took longer than the writes.)"""

    def __init__(self, write: Callable[[list[Row]], Awaitable[list[Result]]], *, batch: int):
        self._write = write
        self._batch = batch
        self._queue: list[_Pending[Row, Result]] = []
        self._writing = False

    async def put(self, row: Row) -> Result:
        pending = _Pending[Row, Result](row, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._writing:
            try:
                outcome = await pending.done
            except BaseException:
                if pending.done.done() and not pending.done.cancelled():
                    if pending.done.exception() is None and pending.done.result() is _LEAD:
                        self._hand_over()  # handed the lead just as it was cancelled
                else:
                    with suppress(ValueError):
                        self._queue.remove(pending)
                raise
            if not isinstance(outcome, _Lead):
                return outcome
        # Written here, not in a task of its own: under load every hop through the event loop
        # waits behind the turns' work (an acknowledgement waits on this).
        self._writing = True
        batch, self._queue = self._queue[: self._batch], self._queue[self._batch :]
        try:
            results = await self._write([p.row for p in batch])
        except BaseException as exc:
            # The others in the batch hear of it (a cancelled leader: the rows may be stored;
            # their senders deliver again and the redelivery is deduplicated).
            failure = exc if isinstance(exc, Exception) else RuntimeError("write cancelled")
            for p in batch:
                if p is not pending and not p.done.done():
                    p.done.set_exception(failure)
            raise
        finally:
            self._hand_over()
        mine: Result | None = None
        for p, result in zip(batch, results, strict=True):
            if p is pending:
                mine = result
            elif not p.done.done():
                p.done.set_result(result)
        return cast(Result, mine)

    def _hand_over(self) -> None:
        """The write ended: the first caller still waiting writes the queue next."""
        while self._queue:
            first = self._queue[0]
            if not first.done.done():
                first.done.set_result(_LEAD)
                return
            self._queue.pop(0)  # cancelled while it waited: not written
        self._writing = False


class DeliveryParser(ClaimLoop[DeliveryClaim]):
    """Stores raw deliveries (``submit``) and parses them after the acknowledgement."""

    name = "delivery-parser"

    def __init__(
        self,
        deliveries: Deliveries,
        settings: PipelineSettings,
        connectors: Mapping[str, Connector],
    ):
        super().__init__(settings.model_copy(update={"concurrency": 2}))
        self._deliveries = deliveries
        self._connectors = connectors
        self._lease = settings.lease_seconds
        self._max_attempts = settings.turn_max_attempts
        # SQLite: batched on its writer thread; PostgreSQL: in the event loop.
        self._writer: AckBatch | GroupCommit[dict[str, Any], int | None] = (
            AckBatch(deliveries, batch=WRITE_BATCH)
            if deliveries.db.is_sqlite
            else GroupCommit(deliveries.write, batch=WRITE_BATCH)
        )
        self._handed_over: OrderedDict[int, Any] = OrderedDict()
        self._pruned_at = 0.0

    async def submit(self, channel: str, delivery: RawDelivery) -> bool:
        """Store ``delivery`` durably; False when it was stored before (a redelivery)."""
        # The shedding this loop runs under (``shed_under``) is told of each delivery, so that
        # it watches the loop's lag while platforms wait.
        done = self._shedding.acknowledging() if self._shedding is not None else None
        try:
            stored = await self._writer.put(
                Deliveries.row(channel, delivery.dedup_key, delivery.order_key, delivery.body)
            )
        finally:
            if done is not None:
                done()
        if stored is None:
            return False
        if delivery.payload is not None:
            self._handed_over[stored] = delivery.payload
            if len(self._handed_over) > HANDED_OVER:
                self._handed_over.popitem(last=False)
        self.wake()
        return True

    async def _claim(self, limit: int) -> Sequence[DeliveryClaim]:
        await self._prune()
        # Shedding (short of CPU, webhooks waiting): a few at a time, the rest parsed later.
        batch = SHED_BATCH if self.shedding else CLAIM_BATCH
        claim = await self._deliveries.claim(limit=batch, lease_seconds=self._lease)
        return [claim] if claim is not None else []

    def _task_name(self, work: DeliveryClaim) -> str:
        return f"parse:{work.token}"

    async def _handle(self, work: DeliveryClaim) -> None:
        done: list[int] = []
        failed: list[tuple[int, str]] = []
        unreadable: list[tuple[int, str]] = []
        conversations: dict[tuple[str, str], list[StoredDelivery]] = {}
        for delivery in work.deliveries:
            conversations.setdefault((delivery.channel, delivery.order_key), []).append(delivery)

        async def parse_in_order(items: list[StoredDelivery]) -> None:
            for delivery in items:
                outcome = await self._parse(delivery)
                if isinstance(outcome, UnreadableDelivery):
                    unreadable.append((delivery.id, str(outcome)))  # kept; the rest goes on
                elif outcome is not None:
                    # The rest of this conversation waits behind it (given back; not claimable
                    # while this one is held for its retry).
                    failed.append((delivery.id, outcome))
                    return
                else:
                    done.append(delivery.id)

        await asyncio.gather(*(parse_in_order(items) for items in conversations.values()))
        attempts = max((d.attempts for d in work.deliveries if d.id in dict(failed)), default=0)
        try:
            await self._deliveries.finish(
                work,
                done,
                failed,
                unreadable=unreadable,
                retry_after=min(2.0**attempts, 300.0),
                max_attempts=self._max_attempts,
            )
        except Exception:
            # Left leased: parsed again when the lease runs out (the inbox dedups messages).
            log.exception("recording %d parsed deliveries failed", len(done))

    async def _parse(self, delivery: StoredDelivery) -> str | UnreadableDelivery | None:
        """Hand one delivery to its connector; the error when it failed (``UnreadableDelivery``
        when trying again cannot help)."""
        connector = self._connectors.get(delivery.channel)
        if connector is None:
            return f"no {delivery.channel!r} connector in this process"
        raw = RawDelivery(
            dedup_key=delivery.dedup_key,
            order_key=delivery.order_key,
            body=delivery.body,
            payload=self._handed_over.pop(delivery.id, None),
        )
        try:
            await connector.parse_delivery(raw)
        except UnreadableDelivery as exc:
            # Acknowledged already, so the platform will not send it again: kept, marked
            # failed with the reason, for an operator (``Deliveries.counts``, the row's error).
            log.error(
                "%s delivery %s is unreadable, kept as failed: %s",
                delivery.channel,
                delivery.dedup_key,
                exc,
            )
            return exc
        except Exception as exc:  # noqa: BLE001 — recorded on the delivery and tried again later
            log.warning(
                "parsing %s delivery %s failed (try %d): %s",
                delivery.channel,
                delivery.dedup_key,
                delivery.attempts + 1,
                exc,
            )
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _prune(self) -> None:
        at = asyncio.get_running_loop().time()
        if at - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = at
        try:
            await self._deliveries.prune(older_than=KEEP_PARSED_SECONDS)
        except Exception:
            log.exception("pruning parsed deliveries failed")
