"""The loop the dispatcher and the outbox sender share: claim work from the store while there
are free slots, run each claim as a named tracked task, sleep until woken or the poll interval
passes, and on stop drain what runs (up to a timeout) before cancelling the rest."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar

from bot.config import PipelineSettings

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
        self._wake.set()

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
            free = self._settings.concurrency - len(self._active)
            claimed: Sequence[Work] = ()
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except Exception:
                    log.exception("%s: claiming work failed; retrying", self.name)
            for work in claimed:
                task = asyncio.create_task(self._handle(work), name=self._task_name(work))
                self._active.add(task)
                task.add_done_callback(self._finished)
            if claimed and len(claimed) == free:
                continue  # there may be more work than slots; look again at once
            try:
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self._settings.poll_interval_seconds
                )
            except TimeoutError:
                pass

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        self._wake.set()
        for callback in self._listeners:
            callback()
