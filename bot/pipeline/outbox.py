"""The outbox sender: executes committed actions through their connectors, once each.

Actions of one thread go out in the order the turn decided them; a failing action is retried
in-process with backoff (tenacity, honouring ``Retry-After``), then rescheduled, and
dead-lettered after ``pipeline.outbox_max_attempts`` tries with its last error kept. Each claim
is leased, so a sender that dies mid-send leaves the action to the next one — which is told
(``action.attempt > 0``) to look for the earlier send before sending again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from bot.config import PipelineSettings
from bot.connector import ActionError, Connector
from bot.domain import Action, OutboxStatus, Thread, now
from bot.metrics import Metrics
from bot.store.store import Store

log = logging.getLogger(__name__)

IN_PROCESS_TRIES = 3


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ActionError) and exc.retryable


class OutboxSender:
    def __init__(
        self,
        *,
        store: Store,
        settings: PipelineSettings,
        connectors: Mapping[str, Connector],
        metrics: Metrics,
    ):
        self._store = store
        self._settings = settings
        self._connectors = connectors
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._active: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._backoff = wait_random_exponential(
            multiplier=settings.outbox_backoff_seconds, max=settings.outbox_backoff_max_seconds
        )

    async def start(self) -> None:
        if self._loop_task is not None:
            raise RuntimeError("the outbox sender is already running")
        self._stopping = False
        self._loop_task = asyncio.create_task(self._loop(), name="outbox")

    async def stop(self, drain_timeout: float | None = None) -> None:
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
            await asyncio.gather(*pending, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self._settings.concurrency - len(self._active)
            actions: list[tuple[Action, Thread]] = []
            if free > 0:
                try:
                    actions = await self._store.claim_actions(
                        limit=free, lease_seconds=self._settings.lease_seconds
                    )
                except Exception:
                    log.exception("claiming outbox actions failed; retrying")
            for action, thread in actions:
                task = asyncio.create_task(self._send(action, thread), name=f"action:{action.id}")
                self._active.add(task)
                task.add_done_callback(self._sent)
            if actions and len(actions) == free:
                continue
            try:
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self._settings.poll_interval_seconds
                )
            except TimeoutError:
                pass

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._active.discard(task)
        self._wake.set()

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, but never sooner than the platform's Retry-After."""
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ActionError) and exc.retry_after:
            return max(backoff, exc.retry_after)
        return backoff

    async def _send(self, action: Action, thread: Thread) -> None:
        connector = self._connectors.get(action.channel)
        try:
            if connector is None:
                # Retryable: a connector switched off for a restart may well come back.
                raise ActionError(f"no connector {action.channel!r} is enabled")
            remote_id = None
            tries = 0
            # Never try more often than the attempts left before the dead letter.
            budget = self._settings.outbox_max_attempts - action.attempt
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(max(1, min(IN_PROCESS_TRIES, budget))),
                wait=self._wait,
                retry=retry_if_exception(_retryable),
                reraise=True,
            ):
                with attempt:
                    if tries:
                        await self._store.action_attempted(action.id)
                    current = _with_attempt(action, action.attempt + tries)
                    tries += 1
                    remote_id = await connector.execute(current, thread)
        except asyncio.CancelledError:
            raise
        except ActionError as exc:
            await self._failed(action, exc)
            return
        except Exception as exc:
            log.exception("action %s (%s) raised unexpectedly", action.id, action.kind.value)
            await self._failed(action, exc)
            return
        await self._store.action_done(action.id, remote_id)
        self._metrics.actions.labels(action.channel, action.kind.value, "done").inc()

    async def _failed(self, action: Action, exc: Exception) -> None:
        retryable = not isinstance(exc, ActionError) or exc.retryable
        delay = 2.0 ** min(action.attempt + IN_PROCESS_TRIES, 12)
        delay = min(delay * self._settings.outbox_backoff_seconds,
                    self._settings.outbox_backoff_max_seconds)
        if isinstance(exc, ActionError) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        status = await self._store.action_failed(
            action.id,
            f"{type(exc).__name__}: {exc}",
            retry_at=now() + delay,
            max_attempts=self._settings.outbox_max_attempts if retryable else 0,
        )
        outcome = "dead" if status is OutboxStatus.DEAD else "retry"
        self._metrics.actions.labels(action.channel, action.kind.value, outcome).inc()
        if status is OutboxStatus.DEAD:
            log.error("action %s (%s on %s) dead-lettered: %s",
                      action.id, action.kind.value, action.channel, exc)
        else:
            log.warning("action %s (%s) failed, retrying in %.1fs: %s",
                        action.id, action.kind.value, delay, exc)


def _with_attempt(action: Action, attempt: int) -> Action:
    return replace(action, attempt=attempt)
