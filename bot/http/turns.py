"""Following one submitted message to the end of the turn that answers it, and writing that
as server-sent events. Both the conversations API and the Responses API send the customer's
message through ``customer_message`` and ``run_message``.

The live source is the in-process ``TurnEvents`` fan-out (subscribed to *before* the message is
submitted, so no event is missed). The database is the truth: the inbox row says when the message
was answered and by which run, or skipped (a human holds the thread). Polling it covers what
events cannot: a turn run by another replica, a skip, a crash and retry. A turn that emitted no
``message.delta`` (a provider without streaming) still ends with its full text as one delta.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from bot.domain import (
    JSON,
    Attachment,
    InboundMessage,
    InboxStatus,
    NotFound,
    Run,
    Smith,
    StopReason,
    new_id,
    now,
)
from bot.http.auth import api_error
from bot.http.context import ApiContext
from bot.pipeline.events import TurnEvent
from bot.store.store import Store
from bot.store.web import Conversation, WebStore

log = logging.getLogger(__name__)

SOURCE = "web"
POLL_SECONDS = 0.25
TURN_TIMEOUT_SECONDS = 300.0
HEARTBEAT_SECONDS = 15.0
TERMINAL = ("run.completed", "run.failed")


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One SSE frame: ``event: <name>`` and ``data: <JSON>``."""

    name: str
    data: JSON


def citations(run: Run) -> list[JSON]:
    """The knowledge passages the answer cites. A passage is cited when its citation
    (``Title › Heading (source)``) is in the text; failing that, one passage per document whose
    source or title the text names; failing that, the best passage when the text says "source"."""
    text = run.output_text.lower()
    logged = [r for r in run.rag_results if isinstance(r, dict)]
    # The passage the offline responder answered from comes first: a follow-up is answered from
    # the conversation's search, which the latest message's retrieval may not hold.
    records = [
        r["answered"] for r in logged if isinstance(r.get("answered"), dict)
    ] + [r for r in logged if "kind" not in r]
    exact = [r for r in records if any(form.lower() in text for form in _cited_as(r))]
    found = exact or [
        r for r in records
        if (r.get("source") and str(r["source"]).lower() in text)
        or (r.get("title") and str(r["title"]).lower() in text)
    ]
    if not found and records and re.search(r"\bsource", text):
        found = records[:1]
    unique: dict[str, JSON] = {}
    for record in found:
        item = _citation(record)
        # Several passages of one document cite as one link unless the text names each.
        key = item["title"] if exact else item["source"] or item["title"]
        unique.setdefault(key, item)
    return list(unique.values())


def _where(record: JSON) -> str:
    """``Title › Heading``, without repeating a title the heading path already starts with."""
    title = str(record.get("title") or record.get("source") or "source")
    heading = str(record.get("heading") or "")
    if heading.startswith(f"{title} › "):
        return heading
    if heading and heading != title:
        return f"{title} › {heading}"
    return title


def _cited_as(record: JSON) -> list[str]:
    source = str(record.get("source") or "")
    return [f"{_where(record)} ({source})", f"{record.get('title')} ({source})"]


def _citation(record: JSON) -> JSON:
    source = str(record.get("source") or "")
    url = source if source.startswith(("http://", "https://")) else None
    return {
        "title": _where(record),
        "source": source,
        "url": url,
        "snippet": str(record.get("text") or "")[:400],
    }


async def follow_turn(
    *,
    store: Store,
    web: WebStore,
    queue: asyncio.Queue[TurnEvent],
    source: str,
    dedup_key: str,
    conversation_id: str,
    timeout: float,
) -> AsyncGenerator[StreamEvent, None]:
    """Yield the events of the turn that answers ``dedup_key`` until it ends (or is skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    adopted: set[str] = set()  # runs seen starting after the message was in the inbox
    streamed: set[str] = set()  # runs that sent text deltas of their own
    while True:
        event: TurnEvent | None = None
        try:
            event = await asyncio.wait_for(queue.get(), timeout=POLL_SECONDS)
        except TimeoutError:
            event = None
        if event is not None:
            if event.name == "run.started":
                adopted.add(event.run_id)
                yield StreamEvent(event.name, {**event.payload(), "conversation_id": conversation_id})
                continue
            if event.run_id not in adopted:
                continue  # a turn that was already running before this message arrived
            if event.name not in TERMINAL:
                if event.name == "message.delta":
                    streamed.add(event.run_id)
                yield StreamEvent(event.name, event.payload())
                continue
            outcome = await web.inbox_outcome(source, dedup_key)
            if outcome is None or outcome.run_id != event.run_id:
                continue  # that turn answered earlier messages; ours is in the next one
            async for frame in _finish(store, event.run_id, conversation_id, streamed):
                yield frame
            return
        outcome = await web.inbox_outcome(source, dedup_key)
        if outcome is not None and outcome.status is InboxStatus.DONE and outcome.run_id:
            # Answered without us seeing its end here (another replica, or a missed event).
            if outcome.run_id not in adopted:
                run = await store.get_run(outcome.run_id)
                yield StreamEvent("run.started", {
                    "v": 1, "run_id": run.id, "thread_id": run.thread_id,
                    "smith_id": run.smith_id, "conversation_id": conversation_id,
                })
            async for frame in _finish(store, outcome.run_id, conversation_id, streamed):
                yield frame
            return
        if outcome is not None and outcome.status in (InboxStatus.SKIPPED, InboxStatus.FAILED):
            yield StreamEvent("run.skipped", {
                "v": 1, "run_id": None, "conversation_id": conversation_id,
                "status": outcome.status.value, "reason": outcome.error,
            })
            return
        if loop.time() > deadline:
            yield StreamEvent("run.failed", {
                "v": 1, "run_id": None, "conversation_id": conversation_id,
                "stop_reason": StopReason.ERROR.value,
                "error": "no answer yet; the message is kept and will be answered",
            })
            return


async def _finish(
    store: Store, run_id: str, conversation_id: str, streamed: set[str]
) -> AsyncIterator[StreamEvent]:
    try:
        run = await store.get_run(run_id)
    except NotFound:
        log.warning("run %s ended but is not in the store", run_id)
        return
    if run_id not in streamed and run.output_text:
        yield StreamEvent("message.delta", {"v": 1, "run_id": run.id, "thread_id": run.thread_id,
                                            "delta": run.output_text})
    thread = await store.get_thread(run.thread_id)
    name = "run.failed" if run.stop_reason is StopReason.ERROR else "run.completed"
    yield StreamEvent(name, {
        "v": 1,
        "run_id": run.id,
        "thread_id": run.thread_id,
        "conversation_id": conversation_id,
        "stop_reason": run.stop_reason.value,
        "error": run.error,
        "output_text": run.output_text,
        "citations": citations(run),
        "conversation": {"state": thread.state.value, "control": thread.control.value,
                         "title": thread.title},
    })


async def customer_message(
    ctx: ApiContext,
    smith: Smith,
    conversation: Conversation,
    *,
    text: str,
    file_ids: list[str],
    client_message_id: object = None,
) -> InboundMessage:
    """The customer's message to ``conversation``, checked (400 for a file that is not the
    smith's, or an empty message) but not yet submitted. A ``client_message_id`` makes a retry
    of the same request the same message, not a second turn."""
    attachments = []
    for file_id in file_ids:
        try:
            stored = await ctx.web.get_file(file_id, smith_id=smith.id)
        except NotFound:
            raise api_error(400, f"no file {file_id}", code="invalid_file") from None
        attachments.append(Attachment(stored.filename, stored.content_type, stored.bytes,
                                      file_id=stored.id))
    if not text and not attachments:
        raise api_error(400, "the message is empty", code="empty_message")
    thread = await ctx.store.get_thread(conversation.thread_id)
    agent = await ctx.store.get_agent_by_id(thread.agent_id)
    dedup_key = (f"{smith.id}:{client_message_id}"
                 if isinstance(client_message_id, str) and client_message_id else new_id("msg"))
    return InboundMessage(
        source=SOURCE,
        dedup_key=dedup_key,
        thread_external_id=thread.external_id,
        smith_external_id=smith.external_id,
        text=text,
        agent_slug=agent.slug,
        display_name=smith.display_name,
        attachments=tuple(attachments),
        ref={"conversation_id": conversation.id},
        sent_at=now(),
    )


@asynccontextmanager
async def submitted(
    ctx: ApiContext, message: InboundMessage, conversation: Conversation
) -> AsyncIterator[AsyncGenerator[StreamEvent, None]]:
    """Submit ``message`` (durably accepted on entry) and give the events of the turn that
    answers it (``follow_turn``); subscribed before submitting, so nothing is missed."""
    async with ctx.app.events.subscribe(conversation.thread_id) as queue:
        await ctx.app.submit(message)
        yield follow_turn(
            store=ctx.store, web=ctx.web, queue=queue, source=message.source,
            dedup_key=message.dedup_key, conversation_id=conversation.id,
            timeout=TURN_TIMEOUT_SECONDS,
        )


async def write_sse(
    request: web.Request, frames: AsyncGenerator[StreamEvent, None]
) -> web.StreamResponse:
    """Write ``frames`` as server-sent events (``event:`` + ``data:``), with a comment line as
    a heartbeat while the turn is quiet; a client that leaves does not stop the turn."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    iterator = frames
    pending: asyncio.Future[StreamEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_SECONDS)
            if not done:
                await response.write(b": keep-alive\n\n")
                continue
            try:
                frame = pending.result()
            except StopAsyncIteration:
                pending = None
                break
            pending = None
            data = json.dumps(frame.data, ensure_ascii=False, separators=(",", ":"))
            await response.write(f"event: {frame.name}\ndata: {data}\n\n".encode())
        await response.write_eof()
    except ConnectionResetError:
        # The visitor left; the turn goes on (it is durable) and the answer is in the run.
        log.info("stream closed by the client before the turn ended")
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await iterator.aclose()
    return response
