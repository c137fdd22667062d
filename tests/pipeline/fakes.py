"""In-process stand-ins for the two seams the spine drives: a turn runner and a connector."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.connector import ActionError, Connector
from bot.domain import Action, ActionKind, PlannedAction, StopReason, Thread
from bot.pipeline.turn import TurnContext, TurnResult


@dataclass
class ScriptedRunner:
    """Replies "echo: <messages>"; records every turn; an optional hook runs inside the turn."""

    hook: Callable[[TurnContext], Awaitable[None]] | None = None
    turns: list[TurnContext] = field(default_factory=list)
    active: dict[str, int] = field(default_factory=dict)
    max_active_per_thread: int = 0
    max_active: int = 0
    _running: int = 0

    async def run(self, ctx: TurnContext) -> TurnResult:
        self.turns.append(ctx)
        self.active[ctx.thread.id] = self.active.get(ctx.thread.id, 0) + 1
        self._running += 1
        self.max_active_per_thread = max(self.max_active_per_thread, self.active[ctx.thread.id])
        self.max_active = max(self.max_active, self._running)
        try:
            if self.hook is not None:
                await self.hook(ctx)
            else:
                await asyncio.sleep(0)
            text = "echo: " + " | ".join(m.text for m in ctx.messages)
            return TurnResult(
                output_text=text,
                stop_reason=StopReason.END_TURN,
                actions=(PlannedAction(ActionKind.REPLY, text=text),),
                model="scripted",
            )
        finally:
            self.active[ctx.thread.id] -= 1
            self._running -= 1


@dataclass
class RecordingConnector(Connector):
    """A channel that records what it was asked to do; can be told to fail first."""

    name = "test"  # type: ignore[misc]
    sent: list[Action] = field(default_factory=list)
    failures: list[ActionError] = field(default_factory=list)
    calls: int = 0

    async def execute(self, action: Action, thread: Thread) -> str | None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(action)
        return f"remote-{len(self.sent)}"


async def wait_for(condition: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)
