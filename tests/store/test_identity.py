"""Identity semantics of smiths, threads and agents, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from bot.domain import AgentDefinition, Control, InboundMessage, ThreadState
from bot.store.store import NotFound, Store, ThreadChange


async def _agent(store: Store, slug: str = "support") -> str:
    return (await store.ensure_agent(slug, slug.title())).id


async def test_same_pair_is_the_same_smith(store: Store) -> None:
    agent = await _agent(store)
    first = await store.ensure_smith("web:user_123", agent, display_name="Ada")
    again = await store.ensure_smith("web:user_123", agent)
    assert again.id == first.id
    assert again.display_name == "Ada"


async def test_another_agent_is_another_smith(store: Store) -> None:
    support = await _agent(store, "support")
    billing = await _agent(store, "billing")
    a = await store.ensure_smith("web:user_123", support)
    b = await store.ensure_smith("web:user_123", billing)
    assert a.id != b.id
    assert (a.agent_id, b.agent_id) == (support, billing)


async def test_no_external_id_is_a_throwaway_smith(store: Store) -> None:
    agent = await _agent(store)
    one = await store.ensure_smith(None, agent)
    two = await store.ensure_smith(None, agent)
    assert one.id != two.id
    assert one.external_id is None and not one.auto_memory


async def test_anonymous_smiths_default_to_no_memory(store: Store) -> None:
    agent = await _agent(store)
    anon = await store.ensure_smith("anon:9f2c7b1e", agent)
    known = await store.ensure_smith("web:user_1", agent)
    assert anon.auto_memory is False
    assert known.auto_memory is True


async def test_concurrent_upserts_make_one_smith(store: Store) -> None:
    agent = await _agent(store)
    smiths = await asyncio.gather(
        *(store.ensure_smith("intercom:contact_1", agent) for _ in range(10))
    )
    assert len({s.id for s in smiths}) == 1
    assert len(await store.list_smiths(external_id_prefix="intercom:")) == 1


async def test_patch_claims_an_anonymous_visitor_without_renaming(store: Store) -> None:
    agent = await _agent(store)
    anon = await store.ensure_smith("anon:tok", agent)
    claimed = await store.patch_smith(
        anon.id,
        display_name="Ada Lovelace",
        customer_id="cus_1",
        auto_memory=True,
        metadata={"plan": "pro"},
    )
    assert claimed.id == anon.id
    assert claimed.external_id == "anon:tok"
    assert (claimed.display_name, claimed.customer_id, claimed.auto_memory) == (
        "Ada Lovelace",
        "cus_1",
        True,
    )
    merged = await store.patch_smith(anon.id, metadata={"seats": 3})
    assert merged.metadata == {"plan": "pro", "seats": 3}


async def test_external_id_is_immutable(store: Store) -> None:
    agent = await _agent(store)
    smith = await store.ensure_smith("web:u1", agent)
    with pytest.raises(ValueError, match="external_id"):
        await store.patch_smith(smith.id, external_id="web:u2")


async def test_archiving_frees_the_external_id(store: Store) -> None:
    agent = await _agent(store)
    old = await store.ensure_smith("anon:abc", agent)
    await store.archive_smith(old.id)
    with pytest.raises(NotFound):
        await store.get_smith(old.id)
    assert (await store.get_smith(old.id, include_archived=True)).archived_at is not None
    new = await store.ensure_smith("anon:abc", agent)
    assert new.id != old.id
    assert [s.id for s in await store.list_smiths(external_id_prefix="anon:")] == [new.id]


async def test_list_by_prefix_takes_the_prefix_literally(store: Store) -> None:
    agent = await _agent(store)
    for external in ("anon:1", "anon:2", "web:anon:3", "intercom:4", "an%n:5", "anon_x"):
        await store.ensure_smith(external, agent)
    anon = await store.list_smiths(external_id_prefix="anon:")
    assert sorted(s.external_id or "" for s in anon) == ["anon:1", "anon:2"]
    assert [s.external_id for s in await store.list_smiths(external_id_prefix="an%")] == ["an%n:5"]
    assert len(await store.list_smiths()) == 6


async def test_threads_per_ticket_under_a_smith(store: Store) -> None:
    agent = await _agent(store)
    smith = await store.ensure_smith("intercom:c1", agent)
    thread = await store.ensure_thread(smith, "intercom:conv1", "intercom", metadata={"x": 1})
    assert (thread.state, thread.control, thread.title) == (ThreadState.OPEN, Control.BOT, None)
    assert (await store.ensure_thread(smith, "intercom:conv1", "intercom")).id == thread.id
    other = await store.ensure_thread(smith, "intercom:conv2", "intercom")
    assert other.id != thread.id
    changed = await store.update_thread(
        thread.id, ThreadChange(state=ThreadState.ESCALATED, control=Control.HUMAN, title="Refund")
    )
    assert (changed.state, changed.control, changed.title) == (
        ThreadState.ESCALATED,
        Control.HUMAN,
        "Refund",
    )
    escalated = await store.list_threads(state=ThreadState.ESCALATED)
    assert [t.id for t in escalated] == [thread.id]


async def test_a_ticket_is_never_reused_for_another_smith(store: Store) -> None:
    agent = await _agent(store)
    alice = await store.ensure_smith("slack:T:U1", agent)
    mallory = await store.ensure_smith("slack:T:U2", agent)
    await store.ensure_thread(alice, "slack:T:C:1.0", "slack")
    with pytest.raises(PermissionError):
        await store.ensure_thread(mallory, "slack:T:C:1.0", "slack")


def _first_message(ticket: str, customer: str | None, **fields: object) -> InboundMessage:
    return InboundMessage(
        source="slack",
        dedup_key=f"{ticket}:1",
        thread_external_id=ticket,
        smith_external_id=customer,
        text="hello",
        ref={"channel": "C1"},
        **fields,  # type: ignore[arg-type]
    )


async def test_a_turn_on_a_new_ticket_starts_its_smith_and_thread_in_one_go(
    store: Store,
) -> None:
    agent = await _agent(store)
    known = await store.ensure_smith("slack:T:U1", agent, display_name="Old name")
    await store.ensure_thread(known, "slack:T:C:0.5", "slack")
    assert await store.thread_for_turn(agent, "slack:T:C:1.0", history=20) is None

    message = _first_message(
        "slack:T:C:1.0", "slack:T:U1", display_name="Ada", profile={"plan": "pro"}
    )
    thread, smith, inputs = await store.start_thread(message, agent, history=20)

    # The same smith as the upsert would give, refreshed; a new thread under it.
    assert smith.id == known.id and smith.display_name == "Ada"
    assert smith.metadata == {"plan": "pro"}
    assert (thread.smith_id, thread.external_id, thread.channel) == (
        smith.id, "slack:T:C:1.0", "slack"
    )
    assert thread.metadata == {"channel": "C1"}
    assert inputs.history == () and inputs.version is None
    # Next time the ticket is known, with the same inputs read in the same transaction.
    found = await store.thread_for_turn(agent, "slack:T:C:1.0", history=20)
    assert found is not None
    assert (found[0].id, found[1].id) == (thread.id, smith.id)
    assert found[2] == inputs


async def test_starting_a_ticket_that_is_someone_else_s_is_refused(store: Store) -> None:
    agent = await _agent(store)
    alice = await store.ensure_smith("slack:T:U1", agent)
    await store.ensure_thread(alice, "slack:T:C:1.0", "slack")

    with pytest.raises(PermissionError):
        await store.start_thread(_first_message("slack:T:C:1.0", "slack:T:U2"), agent, history=20)


async def test_a_ticket_without_a_customer_id_gets_a_throwaway_smith(store: Store) -> None:
    agent = await _agent(store)
    thread, smith, _ = await store.start_thread(_first_message("web:t1", None), agent, history=5)
    assert smith.external_id is None and not smith.auto_memory
    assert thread.smith_id == smith.id


async def test_publishing_versions(store: Store) -> None:
    definition = AgentDefinition(slug="support", name="Support", instructions="v1 text")
    first = await store.publish_agent(definition, "first version")
    agent = await store.get_agent("support")
    assert first.version == 1 and agent.live_version == 1

    smith = await store.ensure_smith("web:u1", agent.id)
    pinned = await store.ensure_smith("web:u2", agent.id)
    await store.pin_smith(pinned.id, 1)

    second = await store.publish_agent(
        AgentDefinition(slug="support", name="Support", instructions="v2 text"), "second"
    )
    assert second.version == 2
    # A later publish is not live until promoted; the first publish went live on its own.
    assert (await store.get_agent("support")).live_version == 1
    await store.set_live_version("support", 2)

    tracking = await store.version_for(await store.get_smith(smith.id))
    assert tracking is not None and tracking.version == 2
    assert tracking.definition.instructions == "v2 text"
    stays = await store.version_for(await store.get_smith(pinned.id))
    assert stays is not None and stays.version == 1
    assert [v.version for v in await store.agent_versions("support")] == [1, 2]
    with pytest.raises(NotFound):
        await store.set_live_version("support", 7)


async def test_group_committed_inbox_tells_each_caller_whether_it_was_new(store: Store) -> None:
    from bot.domain import InboundMessage

    def message(key: str, thread: str) -> InboundMessage:
        return InboundMessage(source="test", dedup_key=key, thread_external_id=thread,
                              smith_external_id="test:u", text=key)

    # 300 concurrent deliveries (more than one batch): 100 keys, each delivered 3 times.
    deliveries = [message(f"k{i % 100}", f"test:t{i % 7}") for i in range(300)]
    results = await asyncio.gather(*(store.inbox_put(m, "support") for m in deliveries))
    new_keys = [m.dedup_key for m, new in zip(deliveries, results) if new]
    assert sorted(new_keys) == sorted(f"k{i}" for i in range(100))
    assert await store.inbox_counts() == {"pending": 100}
    assert not await store.inbox_put(message("k5", "test:t5"), "support")
    claims = await store.claim_lanes(limit=10, lease_seconds=30)
    assert sorted(c.lane for c in claims) == sorted(f"support|test:t{i}" for i in range(7))
    assert sum(len(c.items) for c in claims) == 100
