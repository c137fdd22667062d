"""The turn seam: what the dispatcher hands a turn runner, and what it gets back.

The agent engine (``bot.agent``) implements ``TurnRunner``; the dispatcher turns its result
into one run committed together with the actions it decided on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.domain import (
    JSON,
    AgentDefinition,
    InboundMessage,
    PlannedAction,
    Run,
    Smith,
    StopReason,
    Thread,
    ThreadChange,
    ToolCallRecord,
    Usage,
)
from bot.pipeline.events import TurnEvent

EventSink = Callable[[TurnEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TurnContext:
    run_id: str
    agent: AgentDefinition
    agent_version: int | None
    smith: Smith
    thread: Thread
    messages: tuple[InboundMessage, ...]
    history: tuple[Run, ...]
    memories: tuple[str, ...]
    emit: EventSink
    # What people on the support side wrote in the thread through the daemon (while they held
    # it), oldest first: (when, who, what). The bot picks up where they left off.
    people_said: tuple[tuple[float, str, str], ...] = ()

    @property
    def user_text(self) -> str:
        """The new customer messages of this turn, joined (coalesced messages in order)."""
        return "\n\n".join(m.text for m in self.messages if m.text)


@dataclass(frozen=True, slots=True)
class TurnResult:
    output_text: str
    stop_reason: StopReason
    actions: tuple[PlannedAction, ...] = ()
    tool_calls: tuple[ToolCallRecord, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    rag_results: tuple[JSON, ...] = ()
    error: str | None = None
    thread_change: ThreadChange = field(default_factory=ThreadChange)
    memories: tuple[str, ...] = ()
    input: tuple[JSON, ...] = field(default_factory=tuple)


class TurnRunner(Protocol):
    async def run(self, ctx: TurnContext) -> TurnResult:
        """Run one turn. Must not raise for model or tool failures: end in a fallback."""
        ...
