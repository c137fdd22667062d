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
from bot.pipeline.claims import ClaimLoop
from bot.store.store import Store

log = logging.getLogger(__name__)

IN_PROCESS_TRIES = 3


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ActionError) and exc.retryable


class OutboxSender(ClaimLoop[tuple[Action, Thread]]):
    name = "outbox"

    def __init__(
        self,
        *,
        store: Store,
        settings: PipelineSettings,
        connectors: Mapping[str, Connector],
        metrics: Metrics,
    ):
        super().__init__(settings)
        self._store = store
        self._connectors = connectors
        self._metrics = metrics
        self._backoff = wait_random_exponential(
            multiplier=settings.outbox_backoff_seconds, max=settings.outbox_backoff_max_seconds
        )

    async def _claim(self, limit: int) -> list[tuple[Action, Thread]]:
        return await self._store.claim_actions(
            limit=limit, lease_seconds=self._settings.lease_seconds
        )

    def _task_name(self, work: tuple[Action, Thread]) -> str:
        return f"action:{work[0].id}"

    async def _handle(self, work: tuple[Action, Thread]) -> None:
        await self._send(*work)

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
