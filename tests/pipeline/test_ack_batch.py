"""Webhook deliveries stored on SQLite as their platforms wait (``DeliveryParser.submit``): a
unit on the writer thread takes every delivery queued when it starts and answers all of their
callers at once, and one that fails fails them all while the next goes on."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from bot.config import DatabaseSettings, PipelineSettings
from bot.connector import RawDelivery
from bot.pipeline.deliveries import CLAIM_BATCH, DeliveryParser
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.store import Store
from tests.conftest import Ticks


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[Store]:
    db = Database(DatabaseSettings(url=sqlite_url))
    await upgrade(db.engine)
    try:
        yield Store(db)
    finally:
        await db.dispose()


def _delivery(key: str) -> RawDelivery:
    return RawDelivery(key, f"order-{key}", f'{{"id": "{key}"}}'.encode())


async def _writer_held(db: Database) -> tuple[threading.Event, asyncio.Task[Any]]:
    """An ordinary write unit that keeps the writer thread busy until the event is set."""
    release, started = threading.Event(), threading.Event()

    def hold(_conn: Any) -> None:
        started.set()
        release.wait(10)

    held = asyncio.create_task(db.run_tx(hold))
    while not started.is_set():
        await asyncio.sleep(0.01)
    return release, held


async def test_the_deliveries_queued_meanwhile_are_written_and_answered_together(
    sqlite_store: Store,
) -> None:
    db = sqlite_store.db
    parser = DeliveryParser(sqlite_store.deliveries, PipelineSettings(), {})
    release, held = await _writer_held(db)
    ticks = Ticks()
    answered: dict[str, int] = {}

    async def submit(key: str) -> bool:
        stored = await parser.submit("chan", _delivery(key))
        answered[key] = ticks.count
        return stored

    try:
        callers = [asyncio.create_task(submit(f"n{n}")) for n in range(20)]
        for _ in range(5):
            await asyncio.sleep(0)
        statements = db.statements
        release.set()
        await held
        assert await asyncio.gather(*callers) == [True] * 20
    finally:
        ticks.stop()
    # One transaction for all twenty (its BEGIN and one INSERT), not the first alone and the
    # nineteen that queued behind it in the next.
    assert db.statements - statements == 2
    # Every caller resumed in the same pass of the event loop, none a pass after another.
    assert len(set(answered.values())) == 1
    assert (await sqlite_store.deliveries.counts()) == {"pending": 20}


async def test_a_failed_unit_fails_its_callers_and_the_next_one_goes_on(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_store.db
    deliveries = sqlite_store.deliveries
    parser = DeliveryParser(deliveries, PipelineSettings(), {})
    write = deliveries.write_on_writer
    calls = 0

    def failing_once(rows: Any) -> list[int | None]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return write(rows)

    monkeypatch.setattr(deliveries, "write_on_writer", failing_once)
    release, held = await _writer_held(db)
    callers = [asyncio.create_task(parser.submit("chan", _delivery(f"n{n}"))) for n in range(3)]
    gone = asyncio.create_task(parser.submit("chan", _delivery("gone")))
    for _ in range(5):
        await asyncio.sleep(0)
    gone.cancel()  # before its unit started: not written
    release.set()
    await held
    for caller in callers:
        with pytest.raises(OSError):
            await caller
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await parser.submit("chan", _delivery("n0")) is True
    assert (await deliveries.counts()) == {"pending": 1}


class _Decoded:
    """A decoded payload the parser may keep (weakly referenced here to see whether it does)."""


async def test_deliveries_waiting_for_their_parse_keep_few_decoded_payloads(
    sqlite_store: Store,
) -> None:
    # Held back (shedding) or behind, the parser must not keep every waiting delivery's decoded
    # payload: they grew the heap that each full collection walks, stalling acknowledgements.
    parser = DeliveryParser(sqlite_store.deliveries, PipelineSettings(), {})  # never started
    kept: list[weakref.ref[_Decoded]] = []
    submitted = 1_000
    for number in range(submitted):
        payload = _Decoded()
        kept.append(weakref.ref(payload))
        delivery = _delivery(f"n{number}")
        assert await parser.submit("intercom", replace(delivery, payload=payload))
        del payload
    gc.collect()
    alive = [number for number, ref in enumerate(kept) if ref() is not None]
    # About what two claims take (as many as wait between acknowledgement and parse while
    # the parser keeps up), the newest: the rest are decoded from their stored bodies again.
    assert 0 < len(alive) <= 2 * CLAIM_BATCH
    assert alive == list(range(submitted - len(alive), submitted))
