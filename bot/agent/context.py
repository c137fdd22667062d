"""Context assembly: what the model sees in a turn.

Instructions with the smith's variables filled in, the smith's memories, the retrieved knowledge
passages (numbered, with their citations), the thread's history (past runs' input and output),
then the new customer messages coalesced into one user message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.agent.attachments import named
from bot.domain import JSON, Run, Smith, StopReason
from bot.pipeline.turn import TurnContext
from bot.providers.base import ChatMessage, ContentPart
from bot.providers.offline import cite
from bot.providers.offline_answer import PASSAGE_CHARS

if TYPE_CHECKING:
    from bot.agent.attachments import Shown
    from bot.knowledge import Passage

# ``{name}`` or ``{metadata.key}``; anything else in braces (JSON examples, ``{{``) is left alone.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
HISTORY_CHARS = 4000


def smith_variables(smith: Smith, agent_variables: Mapping[str, str]) -> dict[str, str]:
    """The values instructions may use: the smith's metadata keys (also as ``metadata.key``),
    the agent's own variables (such as ``company``) and the smith's fields, later ones winning:
    a customer's profile must not rename the company the bot speaks for."""
    values: dict[str, str] = {}
    for key, value in smith.metadata.items():
        if isinstance(value, (str, int, float, bool)):
            values[str(key)] = str(value)
            values[f"metadata.{key}"] = str(value)
    values.update(agent_variables)
    values["display_name"] = smith.display_name or "the customer"
    values["customer_id"] = smith.customer_id or "unknown"
    values["external_id"] = smith.external_id or "anonymous"
    return values


def fill(template: str, variables: Mapping[str, str]) -> str:
    """Replace the ``{placeholders}`` that have a value; unknown ones stay as written."""

    def replace(match: re.Match[str]) -> str:
        return variables.get(match.group(1), match.group(0))

    return _PLACEHOLDER.sub(replace, template)


def citation(passage: Passage) -> str:
    """``Title › Heading (source)`` — how a passage is cited to the customer."""
    return cite(passage)


@dataclass(frozen=True, slots=True)
class AssembledContext:
    messages: tuple[ChatMessage, ...]
    input: tuple[JSON, ...]


def system_prompt(
    ctx: TurnContext,
    variables: Mapping[str, str],
    passages: Sequence[Passage],
    tool_names: Sequence[str],
) -> str:
    parts = [fill(ctx.agent.instructions, variables).strip()]
    if ctx.memories:
        facts = "\n".join(f"- {fact}" for fact in ctx.memories)
        parts.append(f"What you remember about this customer from earlier conversations:\n{facts}")
    if passages:
        listed = "\n\n".join(
            f"[{n}] {citation(p)} — relevance {p.score:.2f}\n{p.text[:PASSAGE_CHARS].strip()}"
            for n, p in enumerate(passages, start=1)
        )
        parts.append(
            "Knowledge passages (answer from these when they apply, and cite the one you used "
            "as 'Source: <title › heading> (<source>)'):\n\n" + listed
        )
    else:
        parts.append("No knowledge passage matched this message.")
    if tool_names:
        parts.append(
            "Tools you may call: " + ", ".join(tool_names) + ". Call ESCALATE when you cannot "
            "answer confidently or the customer asks for a person; call CLOSE when the customer "
            "confirms the problem is solved."
        )
    return "\n\n".join(parts)


def history_messages(
    history: Sequence[Run], people_said: Sequence[tuple[float, str, str]] = ()
) -> list[ChatMessage]:
    """Past turns as user/assistant pairs, oldest first, tool traffic left out, with what
    people on the support side wrote in between (as the support side's messages, said to be
    theirs). A message an input guardrail stopped never reaches the model, not even later as
    history."""
    timed: list[tuple[float, int, ChatMessage]] = []
    for run in history:
        if run.stop_reason is StopReason.GUARDRAIL:
            continue
        text = "\n\n".join(
            str(item.get("content", "")) for item in run.input if item.get("content")
        )
        if text:
            timed.append((run.started_at, len(timed), ChatMessage("user", text[:HISTORY_CHARS])))
        if run.output_text:
            timed.append((run.finished_at, len(timed),
                          ChatMessage("assistant", run.output_text[:HISTORY_CHARS])))
    for at, who, text in people_said:
        said = f"[{who}, a person from the support team, wrote:] {text}"
        timed.append((at, len(timed), ChatMessage("assistant", said[:HISTORY_CHARS])))
    return [message for _, _, message in sorted(timed, key=lambda t: (t[0], t[1]))]


def user_message(ctx: TurnContext, shown: Sequence[Sequence[Shown]] | None = None) -> ChatMessage:
    """The new messages of this turn, coalesced. ``shown``: each message's attachments as
    ``bot.agent.attachments.show`` made them (text read out of files, images as parts);
    without it attachments are only named."""
    lines: list[str] = []
    parts: list[ContentPart] = []
    for position, message in enumerate(ctx.messages):
        if message.text:
            lines.append(message.text)
        if shown is not None:
            for item in shown[position]:
                if item.note:
                    lines.append(item.note)
                if item.part is not None:
                    parts.append(item.part)
            continue
        lines.extend(named(attachment) for attachment in message.attachments)
    return ChatMessage("user", "\n\n".join(lines), parts=tuple(parts))


def turn_input(ctx: TurnContext) -> tuple[JSON, ...]:
    """The user messages of this turn as the run records them."""
    return tuple(
        {
            "role": "user",
            "content": m.text,
            "attachments": [a.to_json() for a in m.attachments],
        }
        for m in ctx.messages
    )


def assemble(
    ctx: TurnContext,
    *,
    agent_variables: Mapping[str, str],
    passages: Sequence[Passage],
    tool_names: Sequence[str],
    shown: Sequence[Sequence[Shown]] | None = None,
) -> AssembledContext:
    variables = smith_variables(ctx.smith, agent_variables)
    messages = [
        ChatMessage("system", system_prompt(ctx, variables, passages, tool_names)),
        *history_messages(ctx.history, ctx.people_said),
        user_message(ctx, shown),
    ]
    return AssembledContext(tuple(messages), turn_input(ctx))


def conversation_summary(ctx: TurnContext, *, limit: int = 600) -> str:
    """A short summary for a human picking the thread up: first and latest customer messages
    and how many exchanges happened before."""
    asked: list[str] = []
    for run in sorted(ctx.history, key=lambda r: r.started_at):
        for item in run.input:
            content = str(item.get("content") or "").strip()
            if content:
                asked.append(content)
    current = " ".join(ctx.user_text.split())
    pieces = []
    if asked:
        first = " ".join(asked[0].split())
        pieces.append(f"First asked: {_clip(first, 200)}")
        pieces.append(f"{len(ctx.history)} earlier exchange(s) with the bot.")
    pieces.append(f"Latest message: {_clip(current, 300)}")
    return _clip(" ".join(pieces), limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def to_json_text(value: Any) -> str:
    """Tool results go back to the model as JSON text."""
    return json.dumps(value, ensure_ascii=False, default=str)
