"""The loop the dispatcher and the outbox sender share: claim work from the store while there
are free slots, run each claim as a named tracked task, sleep until woken or the poll interval
passes, and on stop drain what runs (up to a timeout) before cancelling the rest.

The loop looks at the store only when there may be something to take: when woken (new work
was committed), when a piece of work finishes while there may be work it held back (the loop
was woken while it ran — work on its lane or thread waits for it — or every slot was taken),
and on the poll interval (other processes, leases run out). A finished turn with nothing new
behind it costs no empty poll.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar

from bot.config import PipelineSettings
from bot.pipeline.shedding import Shedding

log = logging.getLogger(__name__)

Work = TypeVar("Work")


class ClaimLoop(ABC, Generic[Work]):
    """Subclasses say what a claim is (``_claim``), what to do with one (``_handle``) and how
    its task is named (``_task_name``)."""

    name: str

    def __init__(self, settings: PipelineSettings):
        self._settings = settings
        self._wake = asyncio.Event()
        self._active: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._listeners: list[Callable[[], None]] = []
        # Bumped by each wake; a task remembers the value it started under.
        self._generation = 0
        self._started_at: dict[asyncio.Task[None], int] = {}
        # The last claim took every free slot (or none was free): there may be more.
        self._saturated = False
        # While it is engaged, at most ``_shed_slots`` run and a claim waits ``_shed_every``
        # after the last (``shed_under``).
        self._shedding: Shedding | None = None
        self._shed_slots = settings.concurrency
        self._shed_every = 0.0
        self._claimed_at = float("-inf")

    @abstractmethod
    async def _claim(self, limit: int) -> Sequence[Work]: ...

    @abstractmethod
    async def _handle(self, work: Work) -> None: ...

    @abstractmethod
    def _task_name(self, work: Work) -> str: ...

    async def start(self) -> None:
        if self._loop_task is not None:
            raise RuntimeError(f"the {self.name} is already running")
        self._stopping = False
        self._loop_task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop claiming, let running work finish up to the drain timeout, cancel the rest
        (cancelled work was never committed, so it is claimed again after restart)."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        timeout = self._settings.drain_timeout_seconds if drain_timeout is None else drain_timeout
        if self._active:
            _, pending = await asyncio.wait(set(self._active), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("%s: cancelled %d still running after %.1fs",
                            self.name, len(pending), timeout)
                await asyncio.gather(*pending, return_exceptions=True)

    def wake(self) -> None:
        """There is new work: look now rather than at the next poll."""
        self._generation += 1
        self._wake.set()

    def look_again(self) -> None:
        """Work that held other work back has finished (nothing new arrived): look now rather
        than at the next poll. Unlike ``wake`` this does not count as new work, so what runs
        meanwhile does not make the loop look again when it finishes."""
        self._wake.set()

    def run(self, work: Work, *, generation: int | None = None) -> None:
        """Run work claimed elsewhere (already leased to this process) as if claimed here.
        ``generation``: the wake count when it was claimed (by default, now)."""
        if self._stopping:
            return  # its lease runs out and whoever runs next takes it
        task = asyncio.create_task(self._handle(work), name=self._task_name(work))
        self._active.add(task)
        self._started_at[task] = self._generation if generation is None else generation
        task.add_done_callback(self._finished)

    def shed_under(self, shedding: Shedding, *, slots: int, every: float) -> None:
        """While ``shedding`` is engaged (the process is short of CPU and webhooks wait for
        their acknowledgements) start no more work while ``slots`` pieces run, and claim at
        most once every ``every`` seconds: what runs finishes, and work still goes on (the
        floor), just slower. At the configured concurrency again once it lets go."""
        self._shedding = shedding
        self._shed_slots = max(1, min(slots, self._settings.concurrency))
        self._shed_every = every
        shedding.on_release(self.look_again)

    @property
    def shedding(self) -> bool:
        """Whether this loop holds back new work now (at its floor, or resting from it)."""
        return self._shedding is not None and (self._shedding.engaged or self._shedding.resting)

    def _free(self) -> tuple[int, float]:
        """Pieces of work to claim now, and how long to wait at most before looking again."""
        poll = self._settings.poll_interval_seconds
        if self._shedding is None or not self.shedding:
            return self._settings.concurrency - len(self._active), poll
        wait = self._claimed_at + self._shed_every - asyncio.get_running_loop().time()
        if wait > 0:
            return 0, min(poll, wait)
        slots = self._shedding.slots(self._shed_slots, self._settings.concurrency)
        return slots - len(self._active), poll

    @contextmanager
    def notifying(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call ``callback`` each time a piece of work finishes, while in the block (a waiter
        looks at the store then, rather than at its next poll)."""
        self._listeners.append(callback)
        try:
            yield
        finally:
            self._listeners.remove(callback)

    @property
    def busy(self) -> int:
        return len(self._active)

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free, poll = self._free()
            claimed: Sequence[Work] = ()
            # Work that arrives from here on may be behind a lease this claim takes.
            generation = self._generation
            if free > 0:
                self._claimed_at = asyncio.get_running_loop().time()
                try:
                    claimed = await self._claim(free)
                except Exception:
                    log.exception("%s: claiming work failed; retrying", self.name)
            for work in claimed:
                self.run(work, generation=generation)
            self._saturated = free <= 0 or len(claimed) == free
            if claimed and len(claimed) == free:
                continue  # there may be more work than slots; look again at once
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll)
            except TimeoutError:
                pass

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        started = self._started_at.pop(task, -1)
        if self._saturated or started != self._generation:
            self._wake.set()
        for callback in self._listeners:
            callback()
