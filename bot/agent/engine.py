"""PLACEHOLDER until the agent engine (issue 3) lands: a runner that tells the customer a person
will answer and escalates. It exists only so the spine can run end to end; it is not the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain import ActionKind, Control, PlannedAction, StopReason, ThreadState
from bot.pipeline.turn import TurnContext, TurnResult
from bot.store.store import ThreadChange

if TYPE_CHECKING:
    from bot.app import Application


class HandToHumanRunner:
    async def run(self, ctx: TurnContext) -> TurnResult:
        text = "Thanks for your message — a member of our team will reply here shortly."
        return TurnResult(
            output_text=text,
            stop_reason=StopReason.ESCALATED,
            actions=(PlannedAction(ActionKind.REPLY, text=text),),
            thread_change=ThreadChange(state=ThreadState.ESCALATED, control=Control.HUMAN),
            model="none",
        )


async def build_runner(app: Application) -> HandToHumanRunner:
    return HandToHumanRunner()
