"""The dispatcher's side of live replies and turn ends, with a connector that records them: a
committed turn hands its live message to its REPLY; a turn that commits nothing takes it down;
the connector hears how every turn ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.connector import LiveReply, TurnOutcome
from bot.domain import JSON, Control, InboundMessage, InboxStatus, Thread
from bot.pipeline.events import TurnEvent
from bot.pipeline.turn import TurnContext
from bot.store.store import LeaseLost, ThreadChange
from tests.pipeline.conftest import AppFactory
from tests.pipeline.fakes import RecordingConnector, ScriptedRunner, wait_for
from tests.pipeline.test_spine import message


@dataclass
class RecordedLive(LiveReply):
    text: str = ""
    finished: bool = False
    discarded: bool = False

    def append(self, delta: str) -> None:
        self.text += delta

    def reset(self) -> None:
        self.text = ""

    async def finish(self) -> JSON:
        self.finished = True
        return {"live_text": self.text} if self.text else {}

    async def discard(self) -> None:
        self.discarded = True


@dataclass
class LiveConnector(RecordingConnector):
    lives: list[tuple[str, bool, RecordedLive]] = field(default_factory=list)
    ended: list[tuple[TurnOutcome, list[str]]] = field(default_factory=list)

    async def live_reply(self, thread: Thread, run_id: str, *, retry: bool) -> LiveReply | None:
        live = RecordedLive()
        self.lives.append((run_id, retry, live))
        return live

    async def turn_ended(
        self, thread: Thread, messages: Sequence[InboundMessage], outcome: TurnOutcome
    ) -> None:
        self.ended.append((outcome, [m.dedup_key for m in messages]))


async def speak(ctx: TurnContext) -> None:
    for word in ("echo: ", "hello"):
        await ctx.emit(TurnEvent("message.delta", ctx.run_id, ctx.thread.id, {"delta": word}))


async def test_a_committed_turn_hands_its_live_message_to_its_reply(make_app: AppFactory) -> None:
    connector = LiveConnector()
    app = await make_app(ScriptedRunner(hook=speak), connector)
    await app.submit(message("hello", "k1"))
    await wait_for(lambda: len(connector.sent) == 1)
    [(run_id, retry, live)] = connector.lives
    assert live.text == "echo: hello" and live.finished and not live.discarded and not retry
    [reply] = connector.sent
    assert reply.run_id == run_id and reply.ref["live_text"] == "echo: hello"
    await wait_for(lambda: connector.ended == [(TurnOutcome.COMPLETED, ["k1"])])


async def test_a_turn_that_commits_nothing_takes_its_live_message_down(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = LiveConnector()
    app = await make_app(ScriptedRunner(hook=speak), connector)

    async def lease_lost(*args: Any, **kwargs: Any) -> None:
        raise LeaseLost("another worker took the lane")

    monkeypatch.setattr(app.store, "commit_turn", lease_lost)
    await app.submit(message("hello", "k1"))
    await wait_for(lambda: bool(connector.lives) and connector.lives[0][2].discarded)
    assert connector.lives[0][2].finished  # handed over, then the commit failed
    assert connector.sent == []


async def test_a_failed_turn_is_retried_as_a_retry_and_ends_given_up(make_app: AppFactory) -> None:
    async def explode(ctx: TurnContext) -> None:
        await speak(ctx)
        raise RuntimeError("boom")

    connector = LiveConnector()
    app = await make_app(ScriptedRunner(hook=explode), connector,
                         pipeline={"turn_max_attempts": 2, "poll_interval_seconds": 0.05})
    await app.submit(message("hello", "k1"))
    await wait_for(lambda: len(connector.ended) == 2)
    assert [outcome for outcome, _ in connector.ended] == [TurnOutcome.RETRYING, TurnOutcome.GAVE_UP]
    assert [retry for _, retry, _ in connector.lives] == [False, True]
    assert all(live.discarded for _, _, live in connector.lives)
    [item] = await app.store.inbox_items()
    assert item["status"] == InboxStatus.FAILED.value


async def test_a_skipped_turn_is_reported_without_a_live_reply(make_app: AppFactory) -> None:
    connector = LiveConnector()
    app = await make_app(ScriptedRunner(), connector)
    await app.submit(message("first", "k1"))
    await wait_for(lambda: len(connector.sent) == 1)
    thread = (await app.store.list_threads())[0]
    await app.store.update_thread(thread.id, ThreadChange(control=Control.HUMAN))
    await app.submit(message("second", "k2"))
    await wait_for(lambda: len(connector.ended) == 2)
    assert connector.ended[1] == (TurnOutcome.SKIPPED, ["k2"])
    assert len(connector.lives) == 1
