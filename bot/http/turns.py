"""Following one submitted message to the end of the turn that answers it.

The live source is the in-process ``TurnEvents`` fan-out (subscribed to *before* the message is
submitted, so no event is missed). The database is the truth: the inbox row says when the message
was answered and by which run, or skipped (a human holds the thread). Polling it covers what
events cannot: a turn run by another replica, a skip, a crash and retry. A turn that emitted no
``message.delta`` (a provider without streaming) still ends with its full text as one delta.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bot.domain import JSON, InboxStatus, Run, StopReason
from bot.pipeline.events import TurnEvent
from bot.store.store import NotFound, Store
from bot.store.web import WebStore

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
TERMINAL = ("run.completed", "run.failed")


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One SSE frame: ``event: <name>`` and ``data: <JSON>``."""

    name: str
    data: JSON


def citations(run: Run) -> list[JSON]:
    """The knowledge passages the answer cites: those named in the text (by title or source),
    else the best one when the answer says it has a source, else none."""
    found: list[JSON] = []
    text = run.output_text.lower()
    for record in run.rag_results:
        title = str(record.get("title") or "")
        source = str(record.get("source") or "")
        named = (source and source.lower() in text) or (title and title.lower() in text)
        if named:
            found.append(_citation(record))
    if not found and run.rag_results and re.search(r"\bsource", text):
        found.append(_citation(run.rag_results[0]))
    unique: dict[str, JSON] = {}
    for item in found:
        unique.setdefault(f"{item['title']}|{item['source']}", item)
    return list(unique.values())


def _citation(record: JSON) -> JSON:
    source = str(record.get("source") or "")
    title = str(record.get("title") or source or "source")
    heading = str(record.get("heading") or "")
    url = source if source.startswith(("http://", "https://")) else None
    return {
        "title": title if not heading or heading == title else f"{title} › {heading}",
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
) -> AsyncIterator[StreamEvent]:
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
