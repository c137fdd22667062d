"""The raw deliveries' group commit (``bot.pipeline.deliveries.GroupCommit``): callers that
arrive during a write share the next one, which starts as soon as the last one ends."""

from __future__ import annotations

import asyncio

import pytest

from bot.pipeline.deliveries import GroupCommit
from tests.conftest import Ticks


async def test_the_next_write_starts_one_hop_after_the_last_one_ends() -> None:
    ticks = Ticks()
    gates = [asyncio.Event() for _ in range(3)]
    writes: list[tuple[list[int], int]] = []
    ended: list[int] = []

    async def write(rows: list[int]) -> list[int]:
        writes.append((list(rows), ticks.count))
        await gates[len(writes) - 1].wait()
        ended.append(ticks.count)
        return [row * 10 for row in rows]

    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    group = GroupCommit(write, batch=100)
    try:
        first = [asyncio.create_task(group.put(n)) for n in range(20)]
        await settle()  # 0 writes alone; 1-19 wait for the next write
        gates[0].set()
        await settle()  # 1-19 are written now
        second = [asyncio.create_task(group.put(n)) for n in range(20, 40)]
        await settle()
        gates[1].set()
        gates[2].set()
        results = await asyncio.gather(*first, *second)
    finally:
        ticks.stop()
    assert results == [n * 10 for n in range(40)]
    assert [rows for rows, _ in writes] == [[0], list(range(1, 20)), list(range(20, 40))]
    # Handed straight to the first caller waiting: not through each caller of the finished
    # write in turn (one loop iteration each, 19 here) before the next write could start.
    assert writes[2][1] - ended[1] <= 3


async def test_a_failed_write_fails_its_callers_and_the_next_write_goes_on() -> None:
    gate = asyncio.Event()
    calls = 0

    async def write(rows: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await gate.wait()
            return rows
        if calls == 2:
            raise OSError("disk full")
        return rows

    group = GroupCommit(write, batch=100)
    first = asyncio.create_task(group.put(0))
    await asyncio.sleep(0)
    failing = [asyncio.create_task(group.put(n)) for n in (1, 2)]
    # One that goes away while it waits gives up its place, and the others go on.
    gone = asyncio.create_task(group.put(99))
    await asyncio.sleep(0)
    gone.cancel()
    gate.set()
    assert await first == 0
    for task in failing:
        with pytest.raises(OSError):
            await task
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await group.put(3) == 3  # not left thinking a write is under way
