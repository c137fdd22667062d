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

from bot.domain import JSON, InboxStatus, NotFound, Run, StopReason
from bot.pipeline.events import TurnEvent
from bot.store.store import Store
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
    """The knowledge passages the answer cites. A passage is cited when its citation
    (``Title › Heading (source)``) is in the text; failing that, one passage per document whose
    source or title the text names; failing that, the best passage when the text says "source"."""
    text = run.output_text.lower()
    records = [r for r in run.rag_results if isinstance(r, dict)]
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
