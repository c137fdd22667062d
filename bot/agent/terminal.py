"""``supportbot chat``: a conversation with the bot in the terminal, through the real pipeline.

Each line read is a customer message on the local ``cli`` channel; the reply streams as it is
written, tool calls and their results show as they happen, and so do the knowledge passages a
turn retrieved and what the turn did to the thread (escalated, closed). After an escalation the
thread belongs to a human, so the next message starts a new conversation. ``/quit`` or end of
input leaves; ``/new`` starts a new conversation.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TextIO

from bot.agent.conversation import Conversation, LocalConnector, TurnOutcome
from bot.config import Settings
from bot.daemon import Launch
from bot.domain import ActionKind, Control
from bot.pipeline.events import TurnEvent

CHANNEL = "cli"
RESULT_CHARS = 160


@dataclass(frozen=True, slots=True)
class ChatOptions:
    agent: str
    external_id: str
    display_name: str | None


async def chat(
    settings: Settings, options: ChatOptions, stdin: TextIO, out: TextIO, *, launch: Launch
) -> int:
    """Read customer lines from ``stdin`` until EOF or ``/quit``; print the conversation."""
    # A local conversation: no channel, and no escalation webhooks told of it.
    local = settings.model_copy(update={"connectors": [], "notify": []})
    connector = LocalConnector(CHANNEL)
    async with launch(local, connectors=[connector]) as daemon:
        conversation = Conversation(
            daemon,
            connector,
            agent_slug=options.agent,
            smith_external_id=options.external_id,
            display_name=options.display_name,
            turn_timeout=settings.model.timeout_seconds * 6 + 30,
        )
        await conversation.open_thread()
        who = options.display_name or options.external_id
        _say(
            out,
            f"supportbot chat — agent {options.agent!r}, model {settings.model.provider}, "
            f"you are {who} ({options.external_id}). /quit to leave, /new for a new "
            f"conversation.",
        )
        interactive = stdin.isatty()
        while True:
            if interactive:
                out.write("you> ")
                out.flush()
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if text == "/new":
                await conversation.open_thread()
                _say(out, "(new conversation)")
                continue
            if not interactive:
                _say(out, f"you> {text}")
            view = _TurnView(out)
            try:
                outcome = await conversation.say(text, on_event=view.on_event)
            except TimeoutError:
                # The message is in the inbox; the dispatcher retries it. Say so and go on.
                _say(out, "(no answer in time; the message stays queued and will be answered)")
                continue
            view.finish(outcome)
            if outcome.thread.control is Control.HUMAN:
                _say(
                    out, "(a person has this conversation now; your next message starts a new one)"
                )
                await conversation.open_thread()
    return 0


class _TurnView:
    """Prints one turn as its events arrive, then what the outbox sent."""

    def __init__(self, out: TextIO):
        self._out = out
        self._open_line = False
        self._streamed: list[str] = []

    async def on_event(self, event: TurnEvent) -> None:
        data = event.data
        if event.name == "message.delta":
            if not self._open_line:
                self._out.write("bot> ")
                self._open_line = True
            delta = str(data.get("delta", ""))
            self._streamed.append(delta)
            self._out.write(delta)
            self._out.flush()
            return
        self._end_line()
        if event.name == "message.reset":
            # A terminal cannot take printed text back: say that it no longer stands.
            self._streamed.clear()
            _say(self._out, "  (that answer was cut off; here it is again)")
        elif event.name == "tool.executing":
            _say(self._out, f"  ⚙ {data.get('name')} {json.dumps(data.get('arguments'))}")
        elif event.name == "tool.completed":
            if data.get("error"):
                _say(self._out, f"  ✗ {data.get('name')}: {data.get('error')}")
            else:
                result = json.dumps(data.get("result"), ensure_ascii=False, default=str)
                _say(self._out, f"  ✓ {data.get('name')} → {_clip(result)}")

    def finish(self, outcome: TurnOutcome) -> None:
        self._end_line()
        streamed = "".join(self._streamed).strip()
        run = outcome.run
        if run is None:
            _say(self._out, "(not answered: a person has this conversation)")
            return
        for action in outcome.actions:
            if action.kind is ActionKind.REPLY:
                if (action.text or "").strip() != streamed:
                    _say(self._out, f"bot> {action.text}")
            elif action.kind is ActionKind.NOTE:
                _say(self._out, f"  [internal note] {_clip(action.text or '', 300)}")
            elif action.kind is ActionKind.CLOSE:
                _say(self._out, "  [conversation closed]")
            else:
                detail = action.tag or action.assignee or action.emoji or action.text or ""
                _say(self._out, f"  [{action.kind.value}] {detail}")
        if run.rag_results:
            best = run.rag_results[0]
            heading = f" › {best['heading']}" if best.get("heading") else ""
            _say(
                self._out,
                f"  [knowledge] best passage: {best.get('title')}{heading} "
                f"({best.get('source')}), score {best.get('score')}",
            )
        state = outcome.thread.state.value
        _say(
            self._out,
            f"  [{run.stop_reason.value}; thread {state}, control {outcome.thread.control.value}]",
        )

    def _end_line(self) -> None:
        if self._open_line:
            self._out.write("\n")
            self._out.flush()
            self._open_line = False


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


def _clip(text: str, limit: int = RESULT_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def default_identity() -> tuple[str, str | None]:
    """``cli:<login>`` and a display name from the login, for a chat without ``--as``."""
    import getpass

    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "local"
    return f"cli:{login}", login.capitalize()
