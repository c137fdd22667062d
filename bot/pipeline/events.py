"""Live turn events (``run.started``, ``message.delta``, ``tool.*``, ``run.completed``) for
whoever watches a thread, such as the web widget's SSE stream. In-process only: the durable
record of a turn is its run."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bot.domain import JSON


@dataclass(frozen=True, slots=True)
class TurnEvent:
    name: str
    run_id: str
    thread_id: str
    data: JSON = field(default_factory=dict)

    def payload(self) -> JSON:
        return {"v": 1, "run_id": self.run_id, "thread_id": self.thread_id, **self.data}


class TurnEvents:
    """A fan-out of turn events per thread; subscribers get a bounded queue each."""

    def __init__(self, queue_size: int = 1000):
        self._queue_size = queue_size
        self._subscribers: dict[str, set[asyncio.Queue[TurnEvent]]] = defaultdict(set)

    async def publish(self, event: TurnEvent) -> None:
        for queue in list(self._subscribers.get(event.thread_id, ())):
            if queue.full():
                # A stalled reader loses old deltas rather than stalling the turn.
                queue.get_nowait()
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self, thread_id: str) -> AsyncIterator[asyncio.Queue[TurnEvent]]:
        queue: asyncio.Queue[TurnEvent] = asyncio.Queue(self._queue_size)
        self._subscribers[thread_id].add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(thread_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[thread_id]
