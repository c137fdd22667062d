"""The connector runtime over the store (``bot.records``): what a connector can reach, scoped
to its channel, and nothing of the store beyond it."""

from __future__ import annotations

import pytest

from bot.connector import ConnectorRuntime
from bot.domain import InboundMessage
from bot.records import StoreRecords, connector_runtime
from bot.store.store import Store
from tests.conftest import make_settings


async def _submit(message: InboundMessage) -> bool:
    return True


def _runtime(store: Store) -> ConnectorRuntime:
    return connector_runtime(make_settings("sqlite://"), store, submit=_submit)


async def test_each_channel_reads_and_writes_its_own_cursor(store: Store) -> None:
    runtime = _runtime(store)
    alpha, beta = runtime.for_channel("alpha"), runtime.for_channel("beta")
    await alpha.set_cursor("poller", {"since": 1.0})
    await beta.set_cursor("poller", {"since": 2.0})
    assert await alpha.get_cursor("poller") == {"since": 1.0}
    assert await beta.get_cursor("poller") == {"since": 2.0}
    assert await alpha.get_cursor("other") is None
    # Named ``<channel>.<name>`` in the store, as the Intercom poller's cursor always was.
    assert await store.get_cursor("alpha.poller") == {"since": 1.0}


async def test_a_runtime_scoped_to_no_channel_has_no_cursor(store: Store) -> None:
    with pytest.raises(RuntimeError, match="no channel"):
        await _runtime(store).get_cursor("poller")


async def test_inbox_look_ups_see_only_the_channel_s_own_messages(store: Store) -> None:
    message = InboundMessage(
        source="alpha", dedup_key="m1", thread_external_id="alpha:t1",
        smith_external_id="alpha:u1", text="hello",
    )
    assert await store.inbox_put(message, "support")
    runtime = _runtime(store)
    assert await runtime.for_channel("alpha").inbox_seen("m1")
    assert not await runtime.for_channel("beta").inbox_seen("m1")
    assert not await runtime.for_channel("alpha").inbox_seen("m2")


async def test_threads_and_smiths_are_found_by_external_id(store: Store) -> None:
    agent = await store.ensure_agent("support", "Support")
    smith = await store.ensure_smith("alpha:u1", agent.id)
    thread = await store.ensure_thread(smith, "alpha:t1", "alpha")
    runtime = _runtime(store).for_channel("alpha")
    assert [t.id for t in await runtime.find_threads_by_external("alpha:t1")] == [thread.id]
    assert await runtime.find_threads_by_external("alpha:nope") == []
    found = await runtime.find_smith("alpha:u1", agent.id)
    assert found is not None and found.id == smith.id
    assert (await runtime.get_smith(thread.smith_id)).external_id == "alpha:u1"
    assert await runtime.find_run("run_unknown") is None


def test_the_runtime_lends_no_store(store: Store) -> None:
    """Connectors get the records' narrow side: the store's writes are not reachable."""
    runtime = _runtime(store)
    assert isinstance(runtime.records, StoreRecords)
    assert not any(isinstance(getattr(runtime, f), Store) for f in runtime.__dataclass_fields__)
    for write in ("update_thread", "ensure_thread", "commit_turn", "inbox_put", "action_done"):
        assert not hasattr(runtime.records, write)
        assert not hasattr(runtime, write)
