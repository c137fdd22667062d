"""PostgreSQL's folded statements of a turn's claim and of the outbox's claim: each reads and
writes what the statements it replaced did, in one exchange with the server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from bot.config import DatabaseSettings
from bot.domain import (
    Action,
    ActionKind,
    InboundMessage,
    Run,
    StopReason,
    ToolCallRecord,
    Usage,
    action_id,
    new_id,
    now,
)
from bot.store import runs as store_runs
from bot.store.database import Database
from bot.store.identity import SmithFields, new_ticket_in
from bot.store.migrate import upgrade
from bot.store.rows import run_values, tool_call_values
from bot.store.schema import memories, person_messages, runs, tool_calls
from bot.store.store import Store, ThreadChange
from tests.fakes.wire import ServerExchanges

pytestmark = pytest.mark.postgres


@pytest.fixture
async def counted(pg_url: str) -> AsyncIterator[tuple[Store, ServerExchanges]]:
    """A migrated store on PostgreSQL whose every exchange with the server is counted."""
    db = Database(DatabaseSettings(url=pg_url))
    exchanges = ServerExchanges(db.engine)
    await upgrade(db.engine)
    try:
        yield Store(db), exchanges
    finally:
        await db.dispose()


def _message(key: str, thread: str, smith: str = "test:u") -> InboundMessage:
    return InboundMessage(
        source="test", dedup_key=key, thread_external_id=thread, smith_external_id=smith,
        text=key,
    )


def _run(thread_id: str, smith_id: str, agent_id: str, at: float, calls: int = 0) -> Run:
    return Run(
        id=new_id("run"), thread_id=thread_id, smith_id=smith_id, agent_id=agent_id,
        agent_version=None, input=[{"role": "user", "content": "hi"}], output_text="hello",
        stop_reason=StopReason.END_TURN, model="scripted", usage=Usage(), rag_results=[],
        error=None, started_at=at, finished_at=at + 0.25,
        tool_calls=tuple(
            ToolCallRecord(seq=n, call_id=f"c{n}", name="lookup", arguments={"q": n},
                           result=None if n else {"found": [1, 2.5]}, latency_ms=0.1 + 0.2)
            for n in range(calls)
        ),
    )


async def test_claiming_due_actions_is_one_exchange_and_leases_each_once(
    counted: tuple[Store, ServerExchanges],
) -> None:
    store, exchanges = counted
    # Nothing due yet; the connection prepares the statement (an exchange more, once).
    assert await store.claim_actions(limit=5, lease_seconds=30) == []
    await store.inbox_put(_message("k1", "test:t1"), "support")
    (claim,) = await store.claim_lanes(limit=1, lease_seconds=30)
    agent = await store.ensure_agent("support", "Support")
    thread, smith, _ = await store.start_thread(claim.items[0].message, agent.id, history=5)
    run = _run(thread.id, smith.id, agent.id, now())
    decided = [
        Action(id=action_id(run.id, n), run_id=run.id, thread_id=thread.id, channel=channel,
               kind=kind, text="x")
        for n, (channel, kind) in enumerate([("notify", ActionKind.ANNOUNCE),
                                             ("test", ActionKind.REPLY)])
    ]
    await store.commit_turn(claim, run, decided, thread_change=ThreadChange())

    before = exchanges.count
    claimed = await store.claim_actions(limit=5, lease_seconds=30)
    # Two actions: a transaction of the due actions, then a lease and a read per action, was
    # seven exchanges (BEGIN, 1 + 2 × 2 statements, COMMIT), nine here with the lease's and
    # the read's first prepare.
    assert exchanges.count - before == 1
    assert [c.action.id for c in claimed] == [a.id for a in decided]
    assert all(c.thread.id == thread.id and c.action.attempt == 0 for c in claimed)
    assert await store.claim_actions(limit=5, lease_seconds=30) == [], "leased once"
    for c in claimed:
        assert await store.renew_action(c, 30), "the claim's token fences its own action"
        assert await store.action_done(c, f"remote-{c.action.id}")
    assert {e.attempts for e in await store.outbox_entries()} == {1}


async def test_a_known_ticket_s_history_is_one_statement_reading_what_the_four_did(
    counted: tuple[Store, ServerExchanges],
) -> None:
    store, _ = counted
    await store.inbox_put(_message("k1", "test:t1"), "support")
    agent = await store.ensure_agent("support", "Support")
    (claim,) = await store.claim_lanes(limit=1, lease_seconds=30)
    thread, smith, _ = await store.start_thread(claim.items[0].message, agent.id, history=5)
    # Whole-second timestamps: ``jsonb`` writes them without a fraction.
    history = [_run(thread.id, smith.id, agent.id, 1_765_000_000.0 + n, calls=n) for n in range(4)]

    def fill(conn: Connection) -> None:
        for run in history:
            conn.execute(insert(runs).values(run_values(run)))
            if run.tool_calls:
                conn.execute(insert(tool_calls), tool_call_values(run))
        for n in range(4):
            conn.execute(insert(person_messages).values(
                id=new_id("pm"), thread_id=thread.id, author_name=f"agent {n}", text=f"said {n}",
                created_at=1_765_000_000.0 + n / 10,
            ))
            conn.execute(insert(memories).values(
                smith_id=smith.id, fact=f"fact {n}", created_at=now()
            ))

    await store.db.run_tx(fill)

    def both(conn: Connection) -> tuple[object, object]:
        folded = store_runs._history(conn, smith.id, thread.id, 3, True)
        core = (
            tuple(store_runs._thread_runs(conn, thread.id, 3)),
            tuple(store_runs._memories(conn, smith.id, store_runs.MEMORY_LIMIT)),
            tuple(store_runs._people_said(conn, thread.id, 3)),
        )
        return folded, core

    folded, core = await store.db.run_read(both)
    assert folded == core
    folded_runs = folded[0]  # type: ignore[index]
    assert [r.id for r in folded_runs] == [r.id for r in history[1:]]
    assert folded_runs == tuple(history[1:])
    assert all(type(r.started_at) is float for r in folded_runs)
    assert all(type(c.latency_ms) is float for r in folded_runs for c in r.tool_calls)
    without_facts = await store.db.run_read(
        lambda conn: store_runs._history(conn, smith.id, thread.id, 3, False)
    )
    assert without_facts[1] == ()


async def test_a_new_ticket_s_smith_and_thread_are_one_statement_and_a_race_writes_neither_twice(
    counted: tuple[Store, ServerExchanges],
) -> None:
    store, _ = counted
    agent = await store.ensure_agent("support", "Support")
    fields = SmithFields("Ann", None, None, None)
    message = _message("k1", "test:t1", smith="test:ann")

    first = await store.db.run_tx(
        lambda conn: new_ticket_in(conn, message, agent.id, fields, smith_id=new_id("smt"))
    )
    assert first is not None and first[0] is not None
    thread, smith = first
    assert (thread.smith_id, smith.external_id, smith.display_name) == (smith.id, "test:ann", "Ann")
    assert thread == await store.find_thread(agent.id, "test:t1")

    # The sender's live smith exists by now: nothing is inserted.
    again = await store.db.run_tx(
        lambda conn: new_ticket_in(conn, message, agent.id, fields, smith_id=new_id("smt"))
    )
    assert again is None
    # Another sender on the same ticket: its smith is new, the thread stays the first's.
    other = _message("k2", "test:t1", smith="test:bob")
    raced = await store.db.run_tx(
        lambda conn: new_ticket_in(conn, other, agent.id, fields, smith_id=new_id("smt"))
    )
    assert raced is not None and raced[0] is None and raced[1].external_id == "test:bob"
    assert await store.find_thread(agent.id, "test:t1") == thread
