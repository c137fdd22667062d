"""The outbox: retries with backoff and Retry-After, dead letters, order within a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import update

from bot.app import Application
from bot.connector import ActionError
from bot.domain import Action, ActionKind, OutboxStatus, PlannedAction, StopReason, Thread, now
from bot.pipeline.turn import TurnContext, TurnResult
from bot.store.migrate import upgrade
from bot.store.schema import outbox
from tests.conftest import make_settings
from tests.pipeline.fakes import RecordingConnector, wait_for
from tests.pipeline.test_spine import message


class ThreeActions:
    async def run(self, ctx: TurnContext) -> TurnResult:
        return TurnResult(
            output_text="done",
            stop_reason=StopReason.END_TURN,
            actions=(
                PlannedAction(ActionKind.TAG, tag="billing"),
                PlannedAction(ActionKind.NOTE, text="internal"),
                PlannedAction(ActionKind.REPLY, text="done"),
            ),
        )


async def _app(db_url: str, connector: RecordingConnector, **pipeline: Any) -> Application:
    async def factory(_: Application) -> ThreeActions:
        return ThreeActions()

    settings = make_settings(db_url, pipeline={"outbox_backoff_seconds": 0.01, **pipeline})
    app = Application(settings, runner_factory=factory, connectors=[connector], serve_http=False)
    await upgrade(app.db.engine)
    await app.start()
    return app


def _outbox_settled(app: Application) -> Callable[[], Awaitable[bool]]:
    async def settled() -> bool:
        return not (await app.store.outbox_counts()).get(OutboxStatus.PENDING.value)

    return settled


async def test_actions_go_out_in_order_once_each(db_url: str) -> None:
    connector = RecordingConnector()
    app = await _app(db_url, connector)
    try:
        await app.submit(message("hi", "k1"))
        await wait_for(lambda: len(connector.sent) == 3)
        assert [a.kind for a in connector.sent] == [ActionKind.TAG, ActionKind.NOTE, ActionKind.REPLY]
        assert len({a.id for a in connector.sent}) == 3
        assert all(a.attempt == 0 for a in connector.sent)
    finally:
        await app.stop()


async def test_each_action_sent_makes_way_for_the_next_without_waiting_for_a_poll(
    db_url: str,
) -> None:
    """A turn's actions go out one after another: when one is sent, the sender looks for the
    next of its thread at once rather than at its next poll (an hour here). A sweep's last
    escalations (tag, note, reply) waited a poll interval per step, with nothing new to wake
    the sender."""
    connector = RecordingConnector()
    app = await _app(db_url, connector, poll_interval_seconds=3600)
    try:
        await app.submit(message("hi", "k1"))
        await wait_for(lambda: len(connector.sent) == 3, timeout=10)
        assert [a.kind for a in connector.sent] == [ActionKind.TAG, ActionKind.NOTE, ActionKind.REPLY]
    finally:
        await app.stop()


async def test_a_turns_later_actions_are_claimed_once_the_one_ahead_has_gone_out(
    db_url: str,
) -> None:
    """The first action is handed over by the commit; the sender looks for each later one when
    the one ahead of it has gone out, and not before (a claim then finds nothing: the rest of
    the thread waits behind the action being sent)."""
    connector = RecordingConnector()
    claimed: list[int] = []

    async def factory(_: Application) -> ThreeActions:
        return ThreeActions()

    settings = make_settings(db_url, pipeline={"poll_interval_seconds": 3600})
    app = Application(settings, runner_factory=factory, connectors=[connector], serve_http=False)
    claim_actions = app.store.claim_actions

    async def counted(**kwargs: Any) -> Any:
        claims = await claim_actions(**kwargs)
        claimed.append(len(claims))
        return claims

    app.store.claim_actions = counted
    await upgrade(app.db.engine)
    await app.start()
    try:
        await wait_for(lambda: claimed == [0])  # the sender's first look, at its start
        await app.submit(message("hi", "k1"))
        await wait_for(lambda: len(connector.sent) == 3, timeout=10)
        assert claimed == [0, 1, 1]
    finally:
        await app.stop()


async def test_retry_after_is_honoured_and_the_resend_is_flagged(db_url: str) -> None:
    connector = RecordingConnector(
        failures=[ActionError("rate limited", retry_after=0.3), ActionError("rate limited", retry_after=0.3)]
    )
    app = await _app(db_url, connector)
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await app.submit(message("hi", "k1"))
        await wait_for(lambda: len(connector.sent) == 3)
        assert loop.time() - began >= 0.6, "two Retry-After waits of 0.3 s must be honoured"
        assert connector.calls == 5
        first = connector.sent[0]
        assert first.kind is ActionKind.TAG and first.attempt == 2
        # The last send is recorded once its connector call has returned.
        await wait_for(_outbox_settled(app))
        entries = await app.store.outbox_entries()
        assert [e.status for e in entries] == [OutboxStatus.DONE] * 3
        assert entries[0].attempts == 3
    finally:
        await app.stop()


async def test_a_hopeless_action_is_dead_lettered_with_its_error_and_the_rest_go_on(
    db_url: str,
) -> None:
    connector = RecordingConnector(failures=[ActionError("tag name invalid", retryable=False)])
    app = await _app(db_url, connector)
    try:
        await app.submit(message("hi", "k1"))
        await wait_for(lambda: len(connector.sent) == 2)
        dead = await app.store.outbox_entries(status=OutboxStatus.DEAD)
        assert len(dead) == 1
        assert dead[0].action.kind is ActionKind.TAG
        assert dead[0].last_error == "ActionError: tag name invalid"
        assert [a.kind for a in connector.sent] == [ActionKind.NOTE, ActionKind.REPLY]
    finally:
        await app.stop()


async def test_retryable_failures_end_in_the_dead_letter_after_max_attempts(db_url: str) -> None:
    # Exactly as many failures as attempts allowed: the first action uses them all up.
    connector = RecordingConnector(failures=[ActionError("503") for _ in range(4)])
    app = await _app(db_url, connector, outbox_max_attempts=4, outbox_backoff_max_seconds=0.05)
    try:
        await app.submit(message("hi", "k1"))
        await wait_for(lambda: len(connector.sent) == 2, timeout=30)
        [dead] = await app.store.outbox_entries(status=OutboxStatus.DEAD)
        assert dead.action.kind is ActionKind.TAG
        assert dead.attempts == 4
        assert connector.calls == 6
        assert dead.last_error == "ActionError: 503"
    finally:
        await app.stop()


class HangingConnector(RecordingConnector):
    """Its sends never finish; it records the ones that were called off."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.called_off = 0

    async def execute(self, action: Action, thread: Thread) -> str | None:
        self.calls += 1
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.called_off += 1
            raise
        return None


async def test_a_sender_that_loses_its_lease_stops_and_records_nothing(db_url: str) -> None:
    connector = HangingConnector()
    app = await _app(db_url, connector, lease_seconds=0.6)
    try:
        await app.submit(message("hi", "k1"))
        await asyncio.wait_for(connector.started.wait(), timeout=30)
        # Another sender has taken the action (as after a lease that could not be renewed).
        steal = update(outbox).values(lease_token="lse_other", lease_expires_at=now() + 3600)
        await app.store.db.run_tx(lambda conn: conn.execute(steal))
        await wait_for(lambda: connector.called_off == 1)
        fenced = {"channel": "test", "kind": "tag", "outcome": "fenced"}
        await wait_for(
            lambda: app.metrics.registry.get_sample_value("supportbot_actions_total", fenced) == 1
        )
        entries = await app.store.outbox_entries()
        assert [e.status for e in entries] == [OutboxStatus.PENDING] * 3
        assert entries[0].last_error is None, "nothing was reported for the lost send"
        assert connector.calls == 1
    finally:
        await app.stop()
