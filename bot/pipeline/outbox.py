"""The outbox sender: executes committed actions through their connectors, once each.

Actions of one thread go out in the order the turn decided them; a failing action is retried
in-process with backoff (tenacity, honouring ``Retry-After``), then rescheduled, and
dead-lettered after ``pipeline.outbox_max_attempts`` tries with its last error kept. Each claim
is leased, and the lease is renewed while the send runs (a slow platform, retries and their
waits), so no second sender takes an action that is still being sent. A sender that dies
mid-send leaves the action to the next one once the lease runs out — which is told
(``action.attempt > 0``) to look for the earlier send before sending again. Every write a sender
makes is fenced by its lease token: a sender that lost its lease stops, and what it reports
afterwards is refused (and noted on the action), never applied over the new sender's work.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from bot.config import PipelineSettings
from bot.connector import ActionError, Connector
from bot.domain import Action, OutboxStatus, now
from bot.metrics import Metrics
from bot.pipeline.claims import ClaimLoop
from bot.retry import wait_retry_after
from bot.store.errors import LeaseLost
from bot.store.outbox import ActionClaim
from bot.store.store import Store

log = logging.getLogger(__name__)

IN_PROCESS_TRIES = 3


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ActionError) and exc.retryable


class OutboxSender(ClaimLoop[ActionClaim]):
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
        # Per thread and channel, the actions committed in this process and not yet through
        # ``_handle``: while one goes out, the next waits behind it in the store (``_queue``).
        self._unsent: Counter[tuple[str, str]] = Counter()
        # Exponential backoff with jitter, but never sooner than the platform's Retry-After.
        self._wait = wait_retry_after(
            wait_random_exponential(
                multiplier=settings.outbox_backoff_seconds,
                max=settings.outbox_backoff_max_seconds,
            )
        )

    async def _claim(self, limit: int) -> list[ActionClaim]:
        return await self._store.claim_actions(
            limit=limit, lease_seconds=self._settings.lease_seconds
        )

    def take(self, claim: ActionClaim | None, actions: Sequence[Action]) -> None:
        """A turn committed ``actions``; ``claim`` is its first, already leased to this sender
        by the commit (None when it could not be): send it now, and look for the rest in the
        store."""
        self._unsent.update(map(_queue, actions))
        if claim is None:
            if actions:
                self.wake()
            return
        self.run(claim)
        # The rest of the claim's queue waits behind it (``_handled`` looks for it); only
        # actions in other queues (announcements) may be claimed now.
        if any(_queue(action) != _queue(claim.action) for action in actions):
            self.wake()

    def _task_name(self, claim: ActionClaim) -> str:
        return f"action:{claim.action.id}"

    async def _handle(self, claim: ActionClaim) -> None:
        try:
            await self._send_leased(claim)
        finally:
            self._handled(claim.action)

    def _handled(self, action: Action) -> None:
        """``action`` has been dealt with: when this process committed more actions of its
        queue, the next one was waiting behind it in the store, so look now rather than at
        the next poll (no new work arrived to wake the loop)."""
        queue = _queue(action)
        if queue not in self._unsent:
            return  # committed elsewhere: what follows it is found by the poll or a notice
        self._unsent[queue] -= 1
        if self._unsent[queue] <= 0:
            del self._unsent[queue]
        else:
            self.look_again()

    async def _send_leased(self, claim: ActionClaim) -> None:
        """Send under a lease kept alive for as long as the send takes (retries and their
        waits included); a send whose lease is lost anyway is stopped, and whatever it would
        have recorded is refused by the store."""
        action = claim.action
        sending = asyncio.create_task(self._send(claim), name=f"send:{action.id}")
        heartbeat = asyncio.create_task(
            self._heartbeat(claim, sending), name=f"lease:action:{action.id}"
        )
        try:
            await asyncio.wait([sending])
        finally:
            heartbeat.cancel()
            if not sending.done():
                sending.cancel()  # this sender is stopping: the send stops with it
            await asyncio.gather(heartbeat, sending, return_exceptions=True)
        if sending.cancelled():
            # Cancelled by the heartbeat: another sender holds the action now and looks for
            # what this one may have sent before it sends.
            self._fenced(action, "its lease was lost mid-send; stopped")
            return
        exc = sending.exception()
        if isinstance(exc, LeaseLost):
            self._fenced(action, "its lease was lost between tries; stopped")
        elif exc is not None:
            if not isinstance(exc, ActionError):
                log.error(
                    "action %s (%s) raised unexpectedly", action.id, action.kind.value, exc_info=exc
                )
            await self._failed(claim, exc if isinstance(exc, Exception) else RuntimeError(exc))
        elif await self._store.action_done(claim, sending.result()):
            self._metrics.actions.labels(action.channel, action.kind.value, "done").inc()
        else:
            self._fenced(action, "it was sent after its lease had passed to another sender")

    async def _heartbeat(self, claim: ActionClaim, sending: asyncio.Task[str | None]) -> None:
        """Renew the lease every third of it; when it turns out to be another sender's,
        stop ``sending``."""
        lease = self._settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            try:
                held = await self._store.renew_action(claim, lease)
            except Exception:
                # The store may answer on the next beat; the lease has two more beats left.
                log.warning("could not renew the lease on action %s", claim.action.id, exc_info=True)
                continue
            if not held:
                sending.cancel()
                return

    async def _send(self, claim: ActionClaim) -> str | None:
        """The connector's work with in-process retries; the platform's id for what it made."""
        action, thread = claim.action, claim.thread
        connector = self._connectors.get(action.channel)
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
                    # Raises LeaseLost (not retried) once another sender holds the action.
                    await self._store.action_attempted(claim)
                current = _with_attempt(action, action.attempt + tries)
                tries += 1
                remote_id = await connector.execute(current, thread)
        return remote_id

    def _fenced(self, action: Action, why: str) -> None:
        self._metrics.actions.labels(action.channel, action.kind.value, "fenced").inc()
        log.warning("action %s (%s): %s", action.id, action.kind.value, why)

    async def _failed(self, claim: ActionClaim, exc: Exception) -> None:
        action = claim.action
        retryable = not isinstance(exc, ActionError) or exc.retryable
        delay = 2.0 ** min(action.attempt + IN_PROCESS_TRIES, 12)
        delay = min(delay * self._settings.outbox_backoff_seconds,
                    self._settings.outbox_backoff_max_seconds)
        if isinstance(exc, ActionError) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        status = await self._store.action_failed(
            claim,
            f"{type(exc).__name__}: {exc}",
            retry_at=now() + delay,
            max_attempts=self._settings.outbox_max_attempts if retryable else 0,
        )
        if status is None:
            self._fenced(action, f"it failed ({exc}) after its lease had passed to another sender")
            return
        outcome = "dead" if status is OutboxStatus.DEAD else "retry"
        self._metrics.actions.labels(action.channel, action.kind.value, outcome).inc()
        if status is OutboxStatus.DEAD:
            log.error("action %s (%s on %s) dead-lettered: %s",
                      action.id, action.kind.value, action.channel, exc)
        else:
            log.warning("action %s (%s) failed, retrying in %.1fs: %s",
                        action.id, action.kind.value, delay, exc)


def _queue(action: Action) -> tuple[str, str]:
    """The actions that go out one after another, in the order they were decided: a thread's
    on one channel (an announcement elsewhere does not wait for the customer's reply)."""
    return action.thread_id, action.channel


def _with_attempt(action: Action, attempt: int) -> Action:
    return replace(action, attempt=attempt)
