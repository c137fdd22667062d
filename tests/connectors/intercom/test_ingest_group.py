"""Concurrent webhook deliveries share their durable write, over real HTTP on 127.0.0.1, on
SQLite and PostgreSQL: deliveries that arrive while a write is under way (PostgreSQL's group
commit) or while SQLite's writer thread is busy are stored together in the next one, each
acknowledged only once it is stored, and when that write fails none of them is acknowledged."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import pytest

from bot.store.deliveries import Deliveries
from connectors.intercom.webhook import sign
from tests.connectors.intercom.conftest import CLIENT_SECRET, running_app, wait_until
from tests.fakes.intercom import FakeIntercom

CONCURRENT = 20


class HeldWrites:
    """``Deliveries.write`` counted, its first call held until every delivery is queued
    behind it (on SQLite, ``write_on_writer`` counted and the writer thread held by
    ``hold_writer``), and ``fail`` deciding which calls raise instead of writing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail: Callable[[int], bool]):
        self.batches: list[int] = []
        self.queued = 0
        self._fail = fail
        write = Deliveries.write
        row = Deliveries.row

        def counted_row(*args: Any) -> dict[str, Any]:
            self.queued += 1  # called as a delivery joins the writer's queue
            return row(*args)

        async def held(store: Deliveries, rows: Sequence[dict[str, Any]]) -> list[int | None]:
            self.batches.append(len(rows))
            if len(self.batches) == 1:
                await wait_until(lambda: self.queued == CONCURRENT, what="every delivery queued")
            if self._fail(len(self.batches)):
                raise OSError("disk full")
            return await write(store, rows)

        def counted_on_writer(store: Deliveries, rows: Sequence[dict[str, Any]]) -> list[int | None]:
            self.batches.append(len(rows))  # SQLite's, on its writer thread (``hold_writer``)
            if self._fail(len(self.batches)):
                raise OSError("disk full")
            return write_on_writer(store, rows)

        write_on_writer = Deliveries.write_on_writer
        monkeypatch.setattr(Deliveries, "row", staticmethod(counted_row))
        monkeypatch.setattr(Deliveries, "write", held)
        monkeypatch.setattr(Deliveries, "write_on_writer", counted_on_writer)


def notifications(fake: FakeIntercom, count: int) -> list[bytes]:
    bodies = []
    for n in range(count):
        contact = fake.add_contact(f"Customer {n}", company=None)
        conversation = fake.start_conversation(contact, f"<p>question {n}</p>")
        bodies.append(json.dumps(fake.notification("conversation.user.created", conversation)).encode())
    return bodies


async def post_all(port: int, bodies: list[bytes]) -> list[int]:
    """Every body posted at once, signed; the statuses in the bodies' order."""
    url = f"http://127.0.0.1:{port}/webhooks/intercom"

    async def post(session: aiohttp.ClientSession, body: bytes) -> int:
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature": sign(CLIENT_SECRET.encode(), body)}
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    connector = aiohttp.TCPConnector(limit=len(bodies))
    async with aiohttp.ClientSession(connector=connector) as session:
        return list(await asyncio.gather(*(post(session, body) for body in bodies)))


async def stored(app: Any) -> int:
    counts: dict[str, int] = await app.store.deliveries.counts()
    return sum(counts.values())


async def hold_writer(app: Any, writes: HeldWrites) -> asyncio.Task[None]:
    """SQLite's writer thread kept busy (an ordinary unit) until every delivery is queued."""
    started = threading.Event()

    def hold(_conn: Any) -> None:
        started.set()
        deadline = time.monotonic() + 10
        while writes.queued < CONCURRENT and time.monotonic() < deadline:
            time.sleep(0.005)

    held = asyncio.create_task(app.store.db.run_tx(hold))
    while not started.is_set():
        await asyncio.sleep(0.01)
    return held


async def post_held(app: Any, writes: HeldWrites, bodies: list[bytes]) -> list[int]:
    if not app.store.db.is_sqlite:
        return await post_all(app.http_port, bodies)
    held = await hold_writer(app, writes)
    statuses = await post_all(app.http_port, bodies)
    await held
    return statuses


async def test_deliveries_during_a_write_share_the_next_one(
    db_url: str, fake_intercom: FakeIntercom, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = HeldWrites(monkeypatch, fail=lambda _call: False)
    bodies = notifications(fake_intercom, CONCURRENT)
    async with running_app(db_url, fake_intercom) as (app, _runner):
        statuses = await post_held(app, writes, bodies)
        assert statuses == [200] * CONCURRENT
        if app.store.db.is_sqlite:
            # Queued while the writer thread was busy: all taken by the next unit there.
            assert writes.batches == [CONCURRENT]
        else:
            # One write for whichever came first, one for the 19 queued behind it: two
            # transactions for twenty deliveries, where one each would be twenty.
            assert writes.batches == [1, CONCURRENT - 1]
        assert await stored(app) == CONCURRENT
        # Redelivered together: acknowledged, stored no second time.
        assert await post_all(app.http_port, bodies) == [200] * CONCURRENT
        assert await stored(app) == CONCURRENT


async def test_a_failed_group_write_acknowledges_none_of_its_deliveries(
    db_url: str, fake_intercom: FakeIntercom, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = HeldWrites(monkeypatch, fail=lambda call: call == (1 if "sqlite" in db_url else 2))
    bodies = notifications(fake_intercom, CONCURRENT)
    async with running_app(db_url, fake_intercom) as (app, _runner):
        statuses = await post_held(app, writes, bodies)
        if app.store.db.is_sqlite:
            assert writes.batches == [CONCURRENT]
            assert statuses == [503] * CONCURRENT
            assert await stored(app) == 0
        else:
            assert writes.batches == [1, CONCURRENT - 1]
            assert sorted(statuses) == [200] + [503] * (CONCURRENT - 1)
            assert await stored(app) == 1
        # Intercom delivers the refused ones again: now they are stored, each once.
        assert await post_all(app.http_port, bodies) == [200] * CONCURRENT
        assert await stored(app) == CONCURRENT
