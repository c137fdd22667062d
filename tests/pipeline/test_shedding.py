"""Load shedding (``bot.pipeline.shedding``): while webhooks arrive and the event loop runs late,
claim loops start less new work so acknowledgements go first; never while the loop keeps up;
the floor of work goes on while engaged; and it lets go when the lag is gone or has lasted too
long."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from bot.config import PipelineSettings
from bot.pipeline.claims import ClaimLoop
from bot.pipeline.shedding import HOLD, STEP, Shedding


class Work(ClaimLoop[int]):
    name = "work"

    def __init__(self, settings: PipelineSettings, queued: int, seconds: float = 0.0):
        super().__init__(settings)
        self.queued = list(range(queued))
        self.seconds = seconds
        self.running = 0
        self.most = 0
        self.done = 0
        self.claims = 0
        self.release = asyncio.Event()
        self.release.set()

    async def _claim(self, limit: int) -> Sequence[int]:
        self.claims += 1
        taken, self.queued = self.queued[:limit], self.queued[limit:]
        return taken

    async def _handle(self, work: int) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await self.release.wait()
        await asyncio.sleep(self.seconds)
        self.running -= 1
        self.done += 1

    def _task_name(self, work: int) -> str:
        return f"work:{work}"


class Switch(Shedding):
    """Engaged when the test says so (the claim loop's side of it)."""

    def __init__(self) -> None:
        super().__init__(lag_threshold=0.02, max_seconds=10)
        self.on = False

    @property
    def engaged(self) -> bool:
        return self.on

    def let_go(self) -> None:
        self.on = False
        for callback in self._on_release:
            callback()


@asynccontextmanager
async def running(work: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """``work`` running as a task for the block's length, cancelled after it."""
    task = asyncio.create_task(work())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def webhooks(
    shedding: Shedding, *, every: float, wait: float, at_once: int = 1
) -> AbstractAsyncContextManager[None]:
    """``at_once`` webhooks arriving every ``every`` seconds, each acknowledged ``wait`` seconds
    later."""

    async def one() -> None:
        done = shedding.acknowledging()
        await asyncio.sleep(wait)
        done()

    async def arrive() -> None:
        tasks = set()
        while True:
            for _ in range(at_once):
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(every)

    return running(arrive)


def sleeper(seconds: float) -> AbstractAsyncContextManager[None]:
    """The loop held up ``seconds`` at a time without this process using the CPU (other
    processes have the cores)."""

    async def block() -> None:
        while True:
            time.sleep(seconds)  # noqa: ASYNC251 — the point: a loop held up
            await asyncio.sleep(0)

    return running(block)


def hog(seconds: float) -> AbstractAsyncContextManager[None]:
    """Something holding the event loop ``seconds`` at a time, over and over (CPU-bound turns)."""

    async def block() -> None:
        while True:
            until = time.perf_counter() + seconds
            while time.perf_counter() < until:  # on the CPU, as a turn's work is
                pass
            await asyncio.sleep(0)

    return running(block)


# For the tests whose loop is held up by ``hog``: its thread counts as on the CPU all the time,
# so that other processes taking the cores of a shared machine (a CI runner) decide nothing.
ON_THE_CPU = time.monotonic


async def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.01)
    return bool(condition())  # type: ignore[operator]


async def test_shedding_engages_while_webhooks_wait_on_a_lagging_loop_and_lets_go_after() -> None:
    shedding = Shedding(lag_threshold=0.02, max_seconds=30, cpu_clock=ON_THE_CPU)
    released = []
    shedding.on_release(lambda: released.append(True))
    async with webhooks(shedding, every=0.005, wait=0.05, at_once=8):
        async with hog(0.04):
            assert await wait_for(lambda: shedding.engaged, 2.0)
            assert shedding.lag > 0.02 and shedding.engagements == 1
        # The lag is gone but webhooks still queue up: held (letting go would only start the
        # turns that bring the lag back).
        await asyncio.sleep(HOLD * 2)
        assert shedding.engaged
    # Webhooks answered at once: lets go after HOLD.
    async with webhooks(shedding, every=0.005, wait=0.0):
        assert await wait_for(lambda: not shedding.engaged, HOLD + 2.0)
    assert released == [True]
    assert shedding.shed_seconds() > HOLD
    await shedding.close()


async def test_a_lagging_loop_without_webhooks_sheds_nothing_and_watches_nothing() -> None:
    shedding = Shedding(lag_threshold=0.02, max_seconds=30, cpu_clock=ON_THE_CPU)
    async with hog(0.04):
        await asyncio.sleep(0.5)
    assert not shedding.engaged and shedding._task is None
    # Webhooks stop: the watch ends (and lets go) after IDLE.
    async with webhooks(shedding, every=0.005, wait=0.05, at_once=8), hog(0.04):
        assert await wait_for(lambda: shedding.engaged, 2.0)
    assert await wait_for(lambda: shedding._task is None and not shedding.engaged, 3.0)
    await shedding.close()


async def test_a_slow_callback_at_a_moderate_webhook_rate_sheds_nothing() -> None:
    # The loop lags (a first turn's imports, a collection) but the acknowledgements do not
    # queue up: nothing to win by holding turns back.
    shedding = Shedding(lag_threshold=0.02, max_seconds=30, cpu_clock=ON_THE_CPU)
    async with webhooks(shedding, every=0.05, wait=0.001), hog(0.04):
        await asyncio.sleep(1.0)
        assert shedding.lag > 0.02
        assert not shedding.engaged and shedding.engagements == 0
    await shedding.close()


async def test_a_loop_late_for_want_of_cores_it_does_not_use_sheds_nothing() -> None:
    # Late by 40 ms an iteration and the acknowledgements queue, but the loop's thread is not
    # on the CPU: other processes have the cores, and holding turns back would not help.
    shedding = Shedding(lag_threshold=0.02, max_seconds=30)
    async with webhooks(shedding, every=0.005, wait=0.05, at_once=8), sleeper(0.04):
        await asyncio.sleep(1.0)
        assert shedding.lag > 0.02 and shedding.queued > 2
        assert not shedding.engaged and shedding.engagements == 0
    await shedding.close()


async def test_webhooks_on_a_loop_that_keeps_up_leave_turns_at_full_concurrency() -> None:
    settings = PipelineSettings(concurrency=8, poll_interval_seconds=60)
    shedding = Shedding(lag_threshold=0.01, max_seconds=30)  # the default threshold
    loop = Work(settings, queued=200, seconds=0.05)  # turns waiting on a remote model
    loop.shed_under(shedding, slots=1, every=0.1)
    await loop.start()
    try:
        async with webhooks(shedding, every=0.01, wait=0.005):  # 100 webhooks a second
            await asyncio.sleep(1.0)
            assert shedding._task is not None  # watched
            assert not shedding.engaged and shedding.engagements == 0
            assert loop.most == 8 and loop.done >= 50
    finally:
        await loop.stop(drain_timeout=5)
        await shedding.close()


async def test_shedding_lasts_at_most_max_seconds_at_a_stretch() -> None:
    shedding = Shedding(lag_threshold=0.02, max_seconds=0.5, cpu_clock=ON_THE_CPU)
    async with webhooks(shedding, every=0.005, wait=0.05, at_once=8), hog(0.04):
        assert await wait_for(lambda: shedding.engaged, 2.0)
        assert await wait_for(lambda: not shedding.engaged, 1.5)  # lagging still
        assert await wait_for(lambda: shedding.engaged, 1.5)  # after its rest
    assert shedding.engagements >= 2
    await shedding.close()


async def test_resting_from_shedding_while_the_loop_lags_starts_no_burst_of_work() -> None:
    # Its rest after max_seconds once started every turn held back at once (full concurrency):
    # they took the loop from the acknowledgements for the whole rest.
    settings = PipelineSettings(concurrency=8, poll_interval_seconds=60)
    shedding = Shedding(lag_threshold=0.02, max_seconds=0.5, cpu_clock=ON_THE_CPU)
    loop = Work(settings, queued=200, seconds=0.05)
    loop.shed_under(shedding, slots=1, every=0.1)
    await loop.start()
    try:
        async with webhooks(shedding, every=0.005, wait=0.05, at_once=8), hog(0.04):
            assert await wait_for(lambda: shedding.engaged, 2.0)
            assert await wait_for(lambda: loop.running <= 1, 2.0)  # what ran before finished
            loop.most, done = loop.running, loop.done
            assert await wait_for(lambda: shedding.resting, 1.5)
            assert await wait_for(lambda: shedding.engaged, 1.5)  # after its rest
        assert loop.most == 1 and loop.done > done  # the floor went on throughout
    finally:
        await loop.stop(drain_timeout=5)
        await shedding.close()


async def test_resting_a_loop_gets_a_slot_more_while_it_keeps_up_and_half_back_when_not() -> None:
    shedding = Shedding(lag_threshold=0.02, max_seconds=20)  # a rest of 4 s
    woken: list[float] = []
    shedding.on_release(lambda: woken.append(shedding.extra))
    at = asyncio.get_running_loop().time()
    shedding.lag, shedding.busy, shedding.queued = 0.05, 0.9, 10.0  # late, on the CPU, queued
    shedding._step(at)
    assert shedding.engaged and shedding.slots(1, 8) == 1
    at += 20.0  # max_seconds at a stretch: it rests, from the floor
    shedding._step(at)
    assert not shedding.engaged and shedding.resting
    assert shedding.slots(1, 8) == 1 and woken == [0]
    shedding.lag, shedding.queued = 0.0, 0.0  # keeping up: a slot more each STEP
    for _ in range(5):
        shedding._step(at := at + STEP * 1.01)
        shedding._step(at + STEP / 2)  # within a STEP: nothing more
    assert shedding.slots(1, 8) == 6 and woken == [0, 1, 2, 3, 4, 5]
    shedding.queued = 10.0  # acknowledgements queue again: half taken back, once a STEP
    shedding._step(at := at + STEP * 1.01)
    shedding._step(at + STEP / 2)
    assert shedding.slots(1, 8) == 3
    shedding._step(at := at + STEP * 1.01)
    shedding._step(at := at + STEP * 1.01)
    assert shedding.slots(1, 8) == 1
    shedding.lag, shedding.queued = 0.0, 0.0
    for _ in range(20):
        shedding._step(at := at + STEP * 1.01)
    assert shedding.slots(1, 8) == 8  # never beyond full concurrency
    woken.clear()
    assert shedding.resting
    shedding._step(at + 4.0)  # the rest (a fifth of max_seconds) is over: full concurrency
    assert not shedding.resting and not shedding.engaged and shedding.slots(1, 8) == 8
    assert woken == [0]  # the loops look for work at once
    await shedding.close()


async def test_while_shedding_a_loop_runs_its_floor_of_work_and_all_again_after() -> None:
    settings = PipelineSettings(concurrency=8, poll_interval_seconds=60)
    switch = Switch()
    switch.on = True
    loop = Work(settings, queued=100, seconds=0.01)
    loop.shed_under(switch, slots=1, every=0.1)
    await loop.start()
    try:
        await asyncio.sleep(1.0)
        # One at a time, a claim every 0.1 s: about 10 done, never none (nobody starves).
        assert loop.most == 1
        assert 5 <= loop.done <= 12 and loop.claims <= 12
        loop.release.clear()
        switch.let_go()  # the loop looks again at once
        assert await wait_for(lambda: loop.running == 8, 0.5)
        loop.release.set()
        assert await wait_for(lambda: not loop.queued and not loop.busy, 5.0)
    finally:
        loop.release.set()
        await loop.stop(drain_timeout=5)
