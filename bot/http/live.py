"""The visitor's live view of a conversation a person may hold: ``GET
/v1/conversations/{id}/events`` streams what a person writes and how the conversation changes
hands (``live_events``), so the widget shows a person's reply as it is sent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator

from bot.domain import JSON, NotFound
from bot.http.auth import api_error
from bot.http.context import ApiContext
from bot.http.turns import StreamEvent
from bot.pipeline.events import TurnEvent
from bot.pipeline.operator import PERSON_MESSAGE, THREAD_UPDATED
from bot.store.messages import PersonMessage

# A visitor's stream ends after this long (the widget opens the next one from where it was),
# so no connection is held for ever; the database is read at least this often besides events.
STREAM_SECONDS = 300.0
POLL_SECONDS = 1.0
WAKE = frozenset({PERSON_MESSAGE, THREAD_UPDATED, "run.completed", "run.failed"})


def person_item(message: PersonMessage) -> JSON:
    """A person's message as a conversation item: an assistant message (so OpenAI's client
    reads it) whose ``author`` says which person wrote it. ``cursor`` resumes a stream after it."""
    return {
        "id": message.id,
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "created_at": int(message.created_at),
        "cursor": repr(message.created_at),
        "author": {"kind": "person", "name": message.author_name},
        "content": [{"type": "output_text", "text": message.text, "annotations": []}],
    }


def parse_cursor(raw: str | None) -> float | None:
    """``after`` of the visitor's stream: the ``cursor`` of the last message it has."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise api_error(400, "after is the cursor of a message", code="invalid_cursor") from None
    if not math.isfinite(value):
        raise api_error(400, "after is the cursor of a message", code="invalid_cursor")
    return value


async def live_snapshot(ctx: ApiContext, thread_id: str, *, after: float | None) -> JSON:
    """What ``live_events`` would start with, as one answer: who holds the thread, and the
    people's messages after ``after`` (``cursor``: where the next poll resumes)."""
    thread = await ctx.store.get_thread(thread_id)
    items = [person_item(m) for m in await ctx.operator.messages(thread_id, after=after)]
    cursor = items[-1]["cursor"] if items else (repr(after) if after is not None else None)
    return {"object": "conversation.events", "state": thread.state.value,
            "control": thread.control.value, "data": items, "cursor": cursor}


async def live_events(
    ctx: ApiContext, thread_id: str, *, after: float | None
) -> AsyncGenerator[StreamEvent, None]:
    """The thread's state now (``thread.updated``), then every person's message written after
    ``after`` and every change of hands, as they happen, for ``STREAM_SECONDS``. Events of this
    process wake it at once; the database, read every ``POLL_SECONDS``, covers what another
    replica did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_SECONDS
    seen: tuple[str, str] | None = None
    async with ctx.app.events.subscribe(thread_id) as queue:
        while True:
            try:
                thread = await ctx.store.get_thread(thread_id)
            except NotFound:
                return  # erased while watched
            state = (thread.state.value, thread.control.value)
            for message in await ctx.operator.messages(thread_id, after=after):
                after = message.created_at
                yield StreamEvent(PERSON_MESSAGE, person_item(message))
            if state != seen:
                seen = state
                yield StreamEvent(THREAD_UPDATED, {"state": state[0], "control": state[1]})
            left = deadline - loop.time()
            if left <= 0:
                return
            await _next_event(queue, min(POLL_SECONDS, left))


async def _next_event(queue: asyncio.Queue[TurnEvent], timeout: float) -> None:
    """Wait until the thread changes hands, a person writes or a turn ends (or ``timeout``);
    a turn's deltas do not wake the stream. The caller reads the store afresh either way."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while (left := end - loop.time()) > 0:
        try:
            event = await asyncio.wait_for(queue.get(), timeout=left)
        except TimeoutError:
            return
        if event.name in WAKE:
            return
