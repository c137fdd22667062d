"""Stored raw deliveries: one row per ``(channel, dedup_key)``, claims that keep a
conversation's deliveries in order across claimers (replicas), retries that hold the rest of
the conversation back, and a lease that runs out hands a delivery to the next claimer."""

from __future__ import annotations

import asyncio

from bot.store.database import WriteQueue
from bot.store.deliveries import Deliveries
from bot.store.store import Store


def _row(key: str, order: str) -> dict[str, object]:
    return Deliveries.row("chan", key, order, f'{{"key": "{key}"}}'.encode())


async def test_a_redelivery_is_not_stored_again(store: Store) -> None:
    ids = await store.deliveries.write([_row("n1", "c1"), _row("n1", "c1"), _row("n2", "c1")])
    assert ids[0] is not None and ids[1] is None and ids[2] is not None
    assert await store.deliveries.write([_row("n1", "c1")]) == [None]
    assert await store.deliveries.counts() == {"pending": 2}


async def test_a_conversation_waits_behind_its_leased_delivery(store: Store) -> None:
    deliveries = store.deliveries
    await deliveries.write([_row("a1", "A")])
    first = await deliveries.claim(limit=10, lease_seconds=60)
    assert first is not None and [d.dedup_key for d in first.deliveries] == ["a1"]
    # Arriving while a1 is parsed elsewhere: b1 may go, a2 waits for a1.
    await deliveries.write([_row("a2", "A"), _row("b1", "B")])
    second = await deliveries.claim(limit=10, lease_seconds=60)
    assert second is not None and [d.dedup_key for d in second.deliveries] == ["b1"]
    assert await deliveries.claim(limit=10, lease_seconds=60) is None
    await deliveries.finish(first, [first.deliveries[0].id], [], retry_after=1, max_attempts=3)
    third = await deliveries.claim(limit=10, lease_seconds=60)
    assert third is not None and [d.dedup_key for d in third.deliveries] == ["a2"]
    assert third.deliveries[0].body == b'{"key": "a2"}'


async def test_a_failed_delivery_holds_its_conversation_until_its_retry(store: Store) -> None:
    deliveries = store.deliveries
    await deliveries.write([_row("a1", "A"), _row("a2", "A")])
    claim = await deliveries.claim(limit=10, lease_seconds=60)
    assert claim is not None and [d.dedup_key for d in claim.deliveries] == ["a1", "a2"]
    a1, _a2 = claim.deliveries
    await deliveries.finish(claim, [], [(a1.id, "boom")], retry_after=0.3, max_attempts=2)
    assert await deliveries.claim(limit=10, lease_seconds=60) is None  # a2 waits for a1
    await asyncio.sleep(0.35)
    again = await deliveries.claim(limit=10, lease_seconds=60)
    assert again is not None and [d.dedup_key for d in again.deliveries] == ["a1", "a2"]
    assert again.deliveries[0].attempts == 1
    # The second failure is the last try: a1 is failed for good, a2 goes on.
    await deliveries.finish(again, [], [(a1.id, "boom")], retry_after=60, max_attempts=2)
    last = await deliveries.claim(limit=10, lease_seconds=60)
    assert last is not None and [d.dedup_key for d in last.deliveries] == ["a2"]
    assert await deliveries.counts() == {"failed": 1, "pending": 1}


async def test_a_lease_that_ran_out_is_claimed_again(store: Store) -> None:
    deliveries = store.deliveries
    await deliveries.write([_row("a1", "A"), _row("a2", "A")])
    lost = await deliveries.claim(limit=10, lease_seconds=0.2)
    assert lost is not None and len(lost.deliveries) == 2
    assert await deliveries.claim(limit=10, lease_seconds=60) is None
    await asyncio.sleep(0.25)
    taken = await deliveries.claim(limit=10, lease_seconds=60)
    assert taken is not None and [d.dedup_key for d in taken.deliveries] == ["a1", "a2"]
    # The first claimer's late outcome is fenced off by the new lease.
    await deliveries.finish(
        lost, [d.id for d in lost.deliveries], [], retry_after=1, max_attempts=3
    )
    assert await deliveries.counts() == {"pending": 2}
    await deliveries.finish(
        taken, [d.id for d in taken.deliveries], [], retry_after=1, max_attempts=3
    )
    assert await deliveries.counts() == {"done": 2}


async def test_an_urgent_writer_goes_before_the_ordinary_ones_waiting() -> None:
    queue = WriteQueue()
    order: list[str] = []

    async def write(name: str, *, urgent: bool = False) -> None:
        async with queue.held(urgent=urgent):
            order.append(name)
            await asyncio.sleep(0.01)

    first = asyncio.create_task(write("first"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(write(f"turn{n}")) for n in range(3)]
    await asyncio.sleep(0)
    ack = asyncio.create_task(write("ack", urgent=True))
    # A cancelled waiter gives up its place without holding the queue.
    gone = asyncio.create_task(write("gone"))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(first, *waiting, ack, gone, return_exceptions=True)
    assert order == ["first", "ack", "turn0", "turn1", "turn2"]
    async with queue.held():
        pass  # free again
