"""Claim loops yield to webhooks' acknowledgements: while a platform waits on the store, a loop
runs at most a few pieces of work at once (``ClaimLoop.yield_to``), and all of them again once
it no longer waits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.config import PipelineSettings
from bot.pipeline.claims import ClaimLoop


class Work(ClaimLoop[int]):
    name = "work"

    def __init__(self, settings: PipelineSettings, queued: int):
        super().__init__(settings)
        self.queued = list(range(queued))
        self.running = 0
        self.most = 0
        self.release = asyncio.Event()

    async def _claim(self, limit: int) -> Sequence[int]:
        taken, self.queued = self.queued[:limit], self.queued[limit:]
        return taken

    async def _handle(self, work: int) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await self.release.wait()
        self.running -= 1

    def _task_name(self, work: int) -> str:
        return f"work:{work}"


async def test_a_loop_runs_fewer_at_once_while_acknowledgements_wait() -> None:
    settings = PipelineSettings(concurrency=8, poll_interval_seconds=60)
    acking = True
    loop = Work(settings, queued=20)
    loop.yield_to(lambda: acking, concurrency=2)
    await loop.start()
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert loop.running == 2 and loop.most == 2
        acking = False
        loop.wake()  # what ``DeliveryParser.when_quiet`` does
        for _ in range(20):
            await asyncio.sleep(0)
        assert loop.running == 8
        loop.release.set()
        for _ in range(100):
            if not loop.queued and not loop.busy:
                break
            await asyncio.sleep(0.01)
        assert loop.queued == [] and loop.running == 0
    finally:
        loop.release.set()
        await loop.stop(drain_timeout=5)
