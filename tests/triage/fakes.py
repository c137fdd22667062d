"""A helpdesk with a backlog (a connector that lists pending work) and a scripted turn runner
that answers, escalates or closes by the customer's words, through the channel's own actions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot.connector import ActionError, Connector
from bot.domain import (
    Action,
    ActionKind,
    Control,
    InboundMessage,
    PlannedAction,
    StopReason,
    Thread,
    ThreadState,
)
from bot.pipeline.turn import TurnContext, TurnResult
from bot.store.store import ThreadChange

SOURCE = "desk"


@dataclass
class DeskConversation:
    id: str
    customer: str
    # (author, part id, text); author is "customer", "bot" or "note"
    parts: list[tuple[str, str, str]] = field(default_factory=list)
    state: str = "open"

    def pending(self) -> list[tuple[str, str]]:
        """The customer's parts since the last answer (notes are stepped over)."""
        waiting: list[tuple[str, str]] = []
        for author, part_id, text in reversed(self.parts):
            if author == "customer":
                waiting.append((part_id, text))
            elif author == "bot":
                break
        return list(reversed(waiting))

    def message(self, part_id: str, text: str) -> InboundMessage:
        """The delivery for one customer part, as the webhook path and fetch_pending make it."""
        return InboundMessage(
            source=SOURCE,
            dedup_key=f"{self.id}:part:{part_id}",
            thread_external_id=f"desk:{self.id}",
            smith_external_id=f"desk:{self.customer}",
            text=text,
            ref={"conversation_id": self.id},
        )


class Desk(Connector):
    """A fake helpdesk channel with a request log (``executed``) per conversation."""

    name = SOURCE

    def __init__(
        self,
        conversations: list[DeskConversation],
        *,
        fail_on: str | None = None,
        fail_listing_after: int | None = None,
        hold_listing_after: int | None = None,
    ):
        self.conversations = {c.id: c for c in conversations}
        self.executed: list[Action] = []
        self.fetches: list[tuple[float | None, int | None]] = []
        self.fail_on = fail_on
        # The listing breaks after this many conversations (a 502 mid-way through the pages).
        self.fail_listing_after = fail_listing_after
        # The listing stops after this many conversations until ``go_on`` is set.
        self.hold_listing_after = hold_listing_after
        self.go_on = asyncio.Event()
        self.listed = 0
        self._part = 0

    async def fetch_pending(
        self, *, since: float | None, limit: int | None
    ) -> AsyncIterator[list[InboundMessage]]:
        self.fetches.append((since, limit))
        taken = 0
        for conversation in list(self.conversations.values()):
            pending = conversation.pending() if conversation.state == "open" else []
            if not pending:
                continue
            await asyncio.sleep(0)
            if taken == self.hold_listing_after:
                await self.go_on.wait()
            if taken == self.fail_listing_after:
                raise ActionError("desk listing broke midway: 502 bad gateway")
            yield [conversation.message(part_id, text) for part_id, text in pending]
            taken += 1
            self.listed += 1
            if limit is not None and taken >= limit:
                return

    def add_customer_part(self, conversation_id: str, text: str) -> InboundMessage:
        self._part += 1
        part_id = f"p{self._part}"
        conversation = self.conversations[conversation_id]
        conversation.parts.append(("customer", part_id, text))
        conversation.state = "open"
        return conversation.message(part_id, text)

    async def execute(self, action: Action, thread: Thread) -> str | None:
        conversation = self.conversations[action.ref["conversation_id"]]
        if self.fail_on is not None and self.fail_on in " ".join(p[2] for p in conversation.parts):
            raise ActionError("desk says no: 403 forbidden", retryable=False)
        self.executed.append(action)
        if action.kind is ActionKind.REPLY:
            conversation.parts.append(("bot", action.id, action.text or ""))
        elif action.kind is ActionKind.NOTE:
            conversation.parts.append(("note", action.id, action.text or ""))
        elif action.kind is ActionKind.CLOSE:
            conversation.state = "closed"
        return action.id

    def actions_on(self, conversation_id: str, kind: ActionKind | None = None) -> list[Action]:
        return [
            a
            for a in self.executed
            if a.ref.get("conversation_id") == conversation_id and (kind is None or a.kind is kind)
        ]


def backlog(n: int, *, start: int = 0) -> list[DeskConversation]:
    """``n`` open conversations: every 10th asks for a human, every 10th (+1) says it is solved,
    the rest ask a question."""
    conversations = []
    for i in range(start, start + n):
        if i % 10 == 0:
            text = "I want to talk to a human please"
        elif i % 10 == 1:
            text = "thanks, that solved it"
        else:
            text = f"How do I reset my password? (#{i})"
        conversations.append(
            DeskConversation(id=f"c{i}", customer=f"u{i}", parts=[("customer", f"c{i}-0", text)])
        )
    return conversations


@dataclass
class DeskRunner:
    """Escalates on "human", closes on "solved", else answers — with the channel's own
    ESCALATE/CLOSE actions, as the engine does. ``delay`` stands in for the model."""

    connectors: dict[str, Connector]
    delay: float = 0.0
    turns: list[TurnContext] = field(default_factory=list)

    async def run(self, ctx: TurnContext) -> TurnResult:
        self.turns.append(ctx)
        if self.delay:
            await asyncio.sleep(self.delay)
        text = ctx.user_text
        connector = self.connectors[ctx.thread.channel]
        if "human" in text:
            actions = connector.escalation_actions(
                reason="asked for a person", priority="normal", summary=text, thread=ctx.thread
            )
            return TurnResult(
                text,
                StopReason.ESCALATED,
                actions=tuple(actions),
                model="scripted",
                thread_change=ThreadChange(ThreadState.ESCALATED, Control.HUMAN),
            )
        if "solved" in text:
            actions = connector.close_actions(resolution_summary="solved", thread=ctx.thread)
            return TurnResult(
                text,
                StopReason.CLOSED,
                actions=tuple(actions),
                model="scripted",
                thread_change=ThreadChange(ThreadState.CLOSED),
            )
        return TurnResult(
            f"answer to: {text}",
            StopReason.END_TURN,
            model="scripted",
            actions=(PlannedAction(ActionKind.REPLY, text=f"answer to: {text}"),),
        )
