"""The knowledge search a turn makes, cached for a few seconds: the runner's retrieval and the
offline responder's own search of the same text cost one query."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cachetools import TTLCache

from bot.providers.offline import KnowledgeSearch

if TYPE_CHECKING:
    from bot.knowledge import Passage


class CachedSearch:
    """A short-lived cache in front of the knowledge base, so the runner's retrieval and the
    offline responder's own search of the same text cost one query. An entry fetched with a
    larger ``limit`` also serves smaller ones."""

    def __init__(
        self,
        knowledge: KnowledgeSearch,
        *,
        size: int = 128,
        ttl_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._knowledge = knowledge
        # query → (the limit it was fetched with, the passages)
        self._entries: TTLCache[str, tuple[int, list[Passage]]] = TTLCache(
            maxsize=size, ttl=ttl_seconds, timer=clock
        )

    async def aclose(self) -> None:
        close = getattr(self._knowledge, "aclose", None)
        if close is not None:
            await close()

    async def search(self, query: str, *, limit: int = 5) -> list[Passage]:
        key = " ".join(query.split())
        hit = self._entries.get(key)
        if hit is not None and hit[0] >= limit:
            return hit[1][:limit]
        found = await self._knowledge.search(key, limit=limit)
        self._entries[key] = (limit, found)
        return found
