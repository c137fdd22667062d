"""Load shedding: when this process is short of CPU while platforms wait for webhooks'
acknowledgements, the acknowledgements go first and new turns (and parses) wait their turn.

A platform that is not answered in time delivers again (Slack after 3 s, Intercom too), and
every retry is more work for a process already behind; a turn that waits loses nothing — its
messages are stored, and so is a delivery not parsed yet. So while the event loop runs late
(its lag, measured by a timer that sleeps ``TICK`` over and over, smoothed, beyond
``pipeline.shed_lag_ms``) and acknowledgements queue up for it (more than ``QUEUED`` waiting on
the store at once, smoothed: a lone slow callback — a first turn's imports, a collection — at a
moderate webhook rate leaves one or none waiting) and the loop's own thread is on the CPU more
than ``BUSY`` of the time (smoothed ``time.thread_time`` over wall time: a process that is late
because other processes took the machine's cores, its turns waiting on a remote model, would
gain nothing by holding them back — measured 0.15 at 30 webhooks/s beside 0.4–0.6 under a
flood, on a machine loaded 5 over its 2 cores), ``Shedding.engaged`` says so and the claim
loops that ``ClaimLoop.shed_under`` it start at most a few new pieces of work at a time (what
runs finishes). It lets go once the loop has kept up for ``HOLD`` seconds — its lag under half
the threshold and no more than ``QUEUED`` acknowledgements waiting on the store (smoothed): with
the turns held back the lag falls even while a flood of webhooks takes the whole CPU, and
letting go then would only start the turns that bring the lag back — or at once when no
webhook has arrived for ``IDLE`` seconds.

What it is not: a rate limit on turns. A process that keeps up — however many webhooks a
second, however many turns wait on a remote model — never lags, so its turns run at the
configured concurrency; the watch only runs while webhooks arrive (none: no timer at all).

Customers are never left in silence: while engaged, a loop still runs its floor of work
(``ClaimLoop.shed_under``), and shedding lasts at most ``pipeline.shed_max_seconds`` at a
stretch, after which it rests for a fifth of that. Resting, the loops run more than their floor
but not all at once: a slot more (``extra``) every ``STEP`` while the loop keeps up (its lag
under the threshold, acknowledgements not queued), half of them taken back when it does not.
(Resting at full concurrency, as it once did, every turn held back started at once: they took
the loop from the acknowledgements for the whole rest, and half of the slowest hundredth of
them in 15-second floods were answered during it.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# The lag timer's period (s): 100 wake-ups a second while webhooks arrive.
TICK = 0.01
# Weight of each lag sample in the smoothed lag (a single slow callback does not engage).
ALPHA = 0.25
# Seconds the loop keeps up (see the module's docstring) before shedding lets go.
HOLD = 0.5
# Acknowledgements waiting at once (smoothed) beyond which they queue up: webhooks come faster
# than they are answered.
QUEUED = 2.0
# Seconds without a webhook after which nobody waits for an acknowledgement.
IDLE = 1.0
# The loop's thread on the CPU this share of the time (smoothed) is busy with its own work.
BUSY = 0.35
# Rest after shedding ``max_seconds`` at a stretch, as a fraction of it.
REST = 0.2
# Resting, a slot more for each loop this often (s) while the loop keeps up.
STEP = 0.1


class Shedding:
    """Whether to put acknowledgements before new work now (``engaged``)."""

    def __init__(
        self,
        *,
        lag_threshold: float,
        max_seconds: float,
        cpu_clock: Callable[[], float] = time.thread_time,
    ):
        # 0: never engage.
        self.lag_threshold = lag_threshold
        # The loop thread's CPU seconds (``busy``); a test gives a clock of its own.
        self._cpu_clock = cpu_clock
        self.max_seconds = max_seconds
        self.lag = 0.0  # the smoothed event loop lag (s) while watched
        self.queued = 0.0  # the smoothed number of acknowledgements waiting
        self.busy = 0.0  # the smoothed share of the time the loop's thread spends on the CPU
        self._waiting = 0
        self.engagements = 0
        self._shed_total = 0.0
        self._engaged = False
        self._engaged_at = 0.0
        self._calm_since: float | None = None
        self._rest_until = 0.0
        self._resting = False
        # Slots each loop may run beyond its floor while resting; when they last changed.
        self.extra = 0
        self._stepped_at = 0.0
        self._last_ack = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._on_release: list[Callable[[], None]] = []

    @property
    def engaged(self) -> bool:
        return self._engaged

    @property
    def resting(self) -> bool:
        """Resting after ``max_seconds`` engaged: loops run ``slots`` of their work."""
        return self._resting

    def slots(self, floor: int, full: int) -> int:
        """How many pieces of work a loop with this ``floor`` (engaged) and ``full``
        concurrency may run now."""
        if self.engaged:
            return floor
        if self.resting:
            return min(full, floor + self.extra)
        return full

    def shed_seconds(self) -> float:
        """How long it has been engaged in all."""
        now = asyncio.get_running_loop().time()
        return self._shed_total + (now - self._engaged_at if self._engaged else 0.0)

    def on_release(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time shedding lets more work start (it lets go, rests, or
        grants a resting loop a slot more): a loop looks for work at once."""
        self._on_release.append(callback)

    def acknowledging(self) -> Callable[[], None]:
        """A webhook waits for its acknowledgement (until the returned callback is called):
        watch the loop's lag (from now until ``IDLE`` seconds after the last one)."""
        if self.lag_threshold <= 0:
            return _nothing
        self._waiting += 1
        loop = asyncio.get_running_loop()
        self._last_ack = loop.time()
        if self._task is None:
            self._task = loop.create_task(self._watch(), name="shedding")
        return self._acknowledged

    def _acknowledged(self) -> None:
        self._waiting -= 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._release()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        self.lag = self.queued = self.busy = 0.0
        at, cpu = loop.time(), self._cpu_clock()
        try:
            while True:
                due = at + TICK
                await asyncio.sleep(TICK)
                was, at, spent, cpu = at, loop.time(), cpu, self._cpu_clock()
                self.lag += ALPHA * (max(0.0, at - due) - self.lag)
                self.queued += ALPHA * (self._waiting - self.queued)
                self.busy += ALPHA * (min(1.0, (cpu - spent) / max(at - was, 1e-6)) - self.busy)
                if at - self._last_ack > IDLE:
                    return  # nobody waits for an acknowledgement
                self._step(at)
        finally:
            self._task = None
            self._end_rest()
            self._release()

    def _step(self, at: float) -> None:
        if self._resting:
            self._rest(at)
        if not self._engaged:
            saturated = self.lag > self.lag_threshold and self.busy > BUSY
            if saturated and self.queued > QUEUED and not self._resting:
                self._engaged, self._engaged_at, self._calm_since = True, at, None
                self.engagements += 1
                log.debug("shedding: loop lag %.0f ms, acknowledgements first", self.lag * 1000)
            return
        if at - self._engaged_at >= self.max_seconds:
            self._rest_until = at + self.max_seconds * REST
            self._resting, self.extra, self._stepped_at = True, 0, at
            self._release()
        elif self.lag >= self.lag_threshold / 2 or self.queued > QUEUED:
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = at
        elif at - self._calm_since >= HOLD:
            self._release()

    def _rest(self, at: float) -> None:
        """Resting: a slot more while the loop keeps up, half taken back when it does not."""
        if at >= self._rest_until:
            self._end_rest()
        elif at - self._stepped_at < STEP:
            return
        elif self.lag < self.lag_threshold and self.queued <= QUEUED:
            self.extra += 1
            self._stepped_at = at
            self._more()
        elif self.extra:
            self.extra //= 2
            self._stepped_at = at

    def _end_rest(self) -> None:
        if self._resting:
            self._resting, self.extra = False, 0
            self._more()

    def _release(self) -> None:
        if not self._engaged:
            return
        self._engaged = False
        self._shed_total += asyncio.get_running_loop().time() - self._engaged_at
        self._more()

    def _more(self) -> None:
        for callback in self._on_release:
            callback()


def _nothing() -> None:
    pass
