"""The short-lived knowledge cache in front of the knowledge base (``CachedSearch``)."""

from __future__ import annotations

from bot.agent.retrieval import CachedSearch
from tests.agent.conftest import FixedKnowledge, passage

PASSAGES = [passage(f"doc {n}", f"doc {n}", f"text {n}", 0.9 - n / 10) for n in range(5)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_repeated_query_is_one_search_until_the_ttl_passes() -> None:
    knowledge, clock = FixedKnowledge(PASSAGES), Clock()
    cache = CachedSearch(knowledge, ttl_seconds=30.0, clock=clock)
    first = await cache.search("reset  my password", limit=4)
    clock.now += 29.9
    # Same words, other spacing: the same entry; a smaller limit is served from it.
    assert await cache.search("reset my password", limit=2) == first[:2]
    assert knowledge.queries == ["reset my password"]
    clock.now += 0.1
    await cache.search("reset my password", limit=2)
    assert knowledge.queries == ["reset my password"] * 2


async def test_a_larger_limit_asks_again() -> None:
    knowledge = FixedKnowledge(PASSAGES)
    cache = CachedSearch(knowledge)
    await cache.search("refund", limit=2)
    assert len(await cache.search("refund", limit=4)) == 4
    assert len(await cache.search("refund", limit=3)) == 3
    assert knowledge.queries == ["refund", "refund"]


async def test_the_least_recently_used_query_leaves_first() -> None:
    knowledge = FixedKnowledge(PASSAGES)
    cache = CachedSearch(knowledge, size=2)
    await cache.search("a")
    await cache.search("b")
    await cache.search("a")  # a is now the most recent
    await cache.search("c")  # b leaves
    await cache.search("a")
    await cache.search("b")
    assert knowledge.queries == ["a", "b", "c", "b"]
