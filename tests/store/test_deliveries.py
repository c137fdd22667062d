"""Stored raw deliveries: one row per ``(channel, dedup_key)``, claims that keep a
conversation's deliveries in order across claimers (replicas), retries that hold the rest of
the conversation back, and a lease that runs out hands a delivery to the next claimer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from bot.store.database import SQLiteWriter
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


def test_an_urgent_writer_goes_before_the_ordinary_ones_waiting() -> None:
    writer = SQLiteWriter()
    order: list[str] = []
    started, release = threading.Event(), threading.Event()

    def unit(name: str) -> Callable[[], str]:
        def run() -> str:
            order.append(name)
            if name == "first":
                started.set()
                release.wait()
            return name

        return run

    try:
        first = writer.submit(unit("first"))
        assert started.wait(5)
        waiting = [writer.submit(unit(f"turn{n}")) for n in range(3)]
        # A unit whose caller went away before it started gives up its place.
        gone = writer.submit(unit("gone"))
        assert gone.cancel()
        ack = writer.submit(unit("ack"), urgent=True)
        release.set()
        assert [f.result(timeout=5) for f in (first, *waiting, ack)] == [
            "first", "turn0", "turn1", "turn2", "ack"
        ]
        assert order == ["first", "ack", "turn0", "turn1", "turn2"]
        failing = writer.submit(lambda: 1 // 0)
        with pytest.raises(ZeroDivisionError):
            failing.result(timeout=5)
        assert writer.submit(unit("after")).result(timeout=5) == "after"  # still serving
    finally:
        writer.close()


async def test_a_transaction_in_the_loop_holds_the_writer_thread(store: Store) -> None:
    """``tx`` (statements awaited one by one) and ``run_tx`` units exclude each other, in
    the order they asked: a unit queued while a ``tx`` is open runs after it commits."""
    db = store.db
    if not db.is_sqlite:
        pytest.skip("the writer thread is SQLite's")
    order: list[str] = []
    async with db.tx() as conn:
        await conn.execute(text("SELECT 1"))
        later = asyncio.create_task(db.run_tx(lambda _conn: order.append("unit")))
        await asyncio.sleep(0.05)
        order.append("tx")
    await later
    assert order == ["tx", "unit"]


async def test_storing_deliveries_is_one_round_trip_on_postgresql(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acknowledgement's insert goes without ``BEGIN`` and ``COMMIT``: each of those is a
    round trip, and a wait for a busy event loop to come back to it."""
    if store.db.is_sqlite:
        pytest.skip("PostgreSQL's round trips")
    import asyncpg.connection

    sent: list[str] = []
    execute = asyncpg.connection.Connection.execute

    async def counted(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query.split()[0].rstrip(";").upper())
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", counted)
    await store.deliveries.write([_row("warm", "c1")])  # the statement prepared once
    sent.clear()
    ids = await store.deliveries.write([_row("n1", "c1"), _row("n2", "c2"), _row("n1", "c1")])
    assert ids[0] is not None and ids[1] is not None and ids[2] is None
    assert sent == []
    await store.db.run_tx(lambda conn: conn.execute(text("SELECT 1")))
    assert sent == ["BEGIN", "COMMIT"]  # what an ordinary unit of work costs, for contrast


async def test_a_batch_with_a_row_that_cannot_be_stored_stores_none_of_it(store: Store) -> None:
    """The batch is one statement in one transaction: a row the database refuses fails every
    row of it (none acknowledged, none stored), and the next write goes on as usual."""
    refused = {**_row("n2", "c1"), "order_key": None}  # NOT NULL
    with pytest.raises(Exception, match="(?i)not[- ]null"):
        await store.deliveries.write([_row("n1", "c1"), refused, _row("n3", "c2")])
    assert await store.deliveries.counts() == {}
    ids = await store.deliveries.write([_row("n1", "c1"), _row("n3", "c2")])
    assert None not in ids
    assert await store.deliveries.counts() == {"pending": 2}

