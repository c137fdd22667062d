"""The commands that start the application import it with the garbage collector paused
(``bot.cli.run.collector_paused``): no collection while importing, the imported objects
handed to the oldest generation, garbage among them still collected, the collector as it was."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from bot.cli.run import collector_paused


class Node:
    """A tracked object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: Any = None


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations of the collections that start while the test runs."""
    started: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.callbacks.append(count)
    try:
        yield started
    finally:
        gc.callbacks.remove(count)


def cycle() -> Node:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return first


def test_no_collection_while_importing_and_the_objects_go_to_the_oldest_generation(
    collections: list[int],
) -> None:
    assert gc.isenabled()
    with collector_paused():
        kept = [cycle() for _ in range(5_000)]  # allocations that would trigger gen-0 passes
        garbage = weakref.ref(cycle())  # unreachable at once, like an import's leftovers
        assert collections == []
        assert garbage() is not None  # not collected inside
    assert gc.isenabled()
    assert any(o is kept[-1] for o in gc.get_objects(generation=2))
    gc.collect()
    assert garbage() is None  # garbage among them is collected by the next full collection


def test_a_collector_disabled_by_the_caller_stays_disabled() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
