"""PostgreSQL's folded statements of a turn's claim and of the outbox's claim: each reads and
writes what the statements it replaced did, in one exchange with the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.engine import Connection

from bot.config import DatabaseSettings
from bot.domain import (
    Action,
    ActionKind,
    AgentDefinition,
    InboundMessage,
    Run,
    StopReason,
    ToolCallRecord,
    Usage,
    action_id,
    new_id,
    now,
)
from bot.store import folded
from bot.store import runs as store_runs
from bot.store.database import Database
from bot.store.identity import SmithFields, new_ticket_in
from bot.store.inbox import LaneClaim
from bot.store.migrate import upgrade
from bot.store.rows import run_values, tool_call_values
from bot.store.runs import PreparedTurn
from bot.store.schema import memories, person_messages, runs, smiths, threads, tool_calls
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


# -- a turn's claim ------------------------------------------------------------------------------


def _asked(key: str, thread: str, smith: str | None, **more: Any) -> InboundMessage:
    return InboundMessage(
        source="test", dedup_key=key, thread_external_id=thread, smith_external_id=smith,
        text=key, **more,
    )


async def _tickets(store: Store, slug: str) -> str:
    """An agent (two versions, the first live) with one known ticket of ``u:ann``, pinned to
    version 2, with a run, a memory and what a person wrote; then a message on each lane a
    claim takes: the known ticket, a new one of Ann (a new name and plan), two of a new
    sender, two of an anonymous one and one of an ``anon:`` visitor. The agent's id."""
    definition = AgentDefinition(slug=slug, name="Support", instructions="help")
    await store.publish_agent(definition, "v1")
    await store.publish_agent(definition, "v2")
    agent_id = (await store.get_agent(slug)).id
    thread, ann, _ = await store.start_thread(
        _asked("setup", "t:known", "u:ann", display_name="Ann", profile={"plan": "free"}),
        agent_id, history=5,
    )
    await store.pin_smith(ann.id, 2)
    run = _run(thread.id, ann.id, agent_id, 1_765_000_000.0, calls=2)

    def fill(conn: Connection) -> None:
        conn.execute(insert(runs).values(run_values(run)))
        conn.execute(insert(tool_calls), tool_call_values(run))
        conn.execute(insert(person_messages).values(
            id=new_id("pm"), thread_id=thread.id, author_name="Agent", text="on it",
            created_at=1_765_000_001.5,
        ))
        conn.execute(insert(memories).values(smith_id=ann.id, fact="likes tea", created_at=now()))

    await store.db.run_tx(fill)
    for message in (
        _asked("k1", "t:known", "u:ann"),
        _asked("k2", "t:ann2", "u:ann", display_name="Ann B.", profile={"plan": "pro"},
               ref={"conversation": "c2"}),
        _asked("k3", "t:bob1", "u:bob", display_name="Bob"),
        _asked("k4", "t:bob2", "u:bob", display_name="Bob"),
        _asked("k5", "t:anon1", None),
        _asked("k6", "t:anon2", None),
        _asked("k7", "t:visit", "anon:v1"),
    ):
        assert await store.inbox_put(replace(message, dedup_key=f"{slug}:{message.dedup_key}"), slug)
    return agent_id


def _seen(claims: list[LaneClaim]) -> tuple[dict[str, tuple[object, ...]], list[list[str]]]:
    """What each claim's turn was given, by ticket, and which tickets share a smith."""
    seen: dict[str, tuple[object, ...]] = {}
    by_smith: dict[str, list[str]] = {}
    for claim in claims:
        p = claim.prepared
        assert p is not None, claim.lane
        t, s, i = p.thread, p.smith, p.inputs
        ticket = claim.items[0].message.thread_external_id
        seen[ticket] = (
            p.started, t.external_id, t.channel, t.state, t.control, t.title, t.metadata,
            t.smith_id == s.id, s.external_id, s.display_name, s.metadata, s.auto_memory,
            s.pinned_version, s.archived_at, i.version and i.version.version,
            i.version and i.version.definition.name,
            [(r.output_text, [c.name for c in r.tool_calls]) for r in i.history],
            i.memories, [said[1:] for said in i.people_said],
        )
        by_smith.setdefault(s.id, []).append(ticket)
    return seen, sorted(sorted(tickets) for tickets in by_smith.values())


async def test_a_turn_s_claim_is_one_exchange_and_gives_each_turn_what_a_transaction_did(
    counted: tuple[Store, ServerExchanges],
) -> None:
    """The claim with every lane's reads and a new ticket's writes (``folded.CLAIM_TURNS``)
    gives each turn what the claim's transaction gave it (``Runs.prepare_turn_in``, as on
    SQLite), on the same tickets of two agents."""
    store, exchanges = counted
    assert await store.claim_turns(limit=8, lease_seconds=30, agent_ids={}, history=5) == []
    folded_agent = await _tickets(store, "folded")
    assert await store.inbox_put(_asked("k8", "t:other", "u:ann"), "unknown")
    before = exchanges.count
    folded_claims = await store.claim_turns(
        limit=20, lease_seconds=30, agent_ids={"folded": folded_agent}, history=5
    )
    assert exchanges.count - before == 1
    (unknown,) = [claim for claim in folded_claims if claim.lane.startswith("unknown|")]
    assert unknown.prepared is None and [i.message.text for i in unknown.items] == ["k8"]

    agent_id = await _tickets(store, "transaction")

    def prepare(conn: Connection, claim: LaneClaim) -> PreparedTurn | None:
        return store.runs.prepare_turn_in(conn, claim.items[0].message, agent_id, 5)

    claims = await store.inbox.claim_lanes(limit=20, lease_seconds=30, prepare=prepare)

    folded_seen = _seen([claim for claim in folded_claims if claim is not unknown])
    assert len(folded_seen[0]) == 7
    assert folded_seen == _seen(claims)
    assert folded_seen[0]["t:known"][14:] == (
        2, "Support", [("hello", ["lookup", "lookup"])], ("likes tea",), [("Agent", "on it")]
    )
    assert folded_seen[1] == [
        ["t:ann2", "t:known"], ["t:anon1"], ["t:anon2"], ["t:bob1", "t:bob2"], ["t:visit"]
    ]
    for agent in (folded_agent, agent_id):
        smiths = await store.list_smiths(agent_id=agent)
        assert sorted(s.external_id or "" for s in smiths) == ["", "", "anon:v1", "u:ann", "u:bob"]


async def _until_a_claim_waits_on_a_lock(db: Database) -> None:
    """Until a session of the test's database waits for a row lock (another's uncommitted
    insert of the same key)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(500):
        async with db.engine.connect() as conn:
            if (await conn.exec_driver_sql(query)).scalar_one():
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the claim never waited for the other replica")


@pytest.mark.parametrize("inserted_meanwhile", ["smith", "thread"])
async def test_what_another_replica_inserts_meanwhile_wins_over_a_claim_s_new_ticket(
    counted: tuple[Store, ServerExchanges], pg_url: str, inserted_meanwhile: str
) -> None:
    """Another replica inserts the sender's live smith (or the ticket's thread, under another
    smith) while the claim inserts its own: the claim waits for it, then leaves its lane's
    inputs for the turn to find (as a raced upsert did in the claim's transaction) — one live
    smith per sender, one thread per ticket."""
    store, _ = counted
    agent_id = (await store.ensure_agent("support", "Support")).id
    other = await store.ensure_smith("u:other", agent_id)
    assert await store.inbox_put(_asked("k1", "t:new", "u:zed"), "support")
    replica = Database(DatabaseSettings(url=pg_url))
    try:
        async with replica.engine.connect() as conn:
            if inserted_meanwhile == "smith":
                await conn.execute(insert(smiths).values(
                    id=new_id("smt"), agent_id=agent_id, external_id="u:zed", metadata={},
                    auto_memory=True, created_at=now(), updated_at=now(),
                ))
            else:
                await conn.execute(insert(threads).values(
                    id=new_id("thr"), smith_id=other.id, agent_id=agent_id, external_id="t:new",
                    channel="test", state="open", control="bot", metadata={}, created_at=now(),
                    updated_at=now(),
                ))
            claiming = asyncio.create_task(store.claim_turns(
                limit=5, lease_seconds=30, agent_ids={"support": agent_id}, history=5
            ))
            await _until_a_claim_waits_on_a_lock(store.db)
            assert not claiming.done()
            await conn.commit()
        (claim,) = await claiming
    finally:
        await replica.dispose()

    assert claim.prepared is None
    assert [s.external_id for s in await store.list_smiths(external_id_prefix="u:zed")] == [
        "u:zed"
    ]
    if inserted_meanwhile == "smith":
        assert await store.find_thread(agent_id, "t:new") is None
        thread, smith, _ = await store.start_thread(claim.items[0].message, agent_id, history=5)
        assert thread.smith_id == smith.id and smith.external_id == "u:zed"
    else:
        thread_now = await store.find_thread(agent_id, "t:new")
        assert thread_now is not None and thread_now.smith_id == other.id


async def test_replicas_claiming_at_once_take_each_lane_once_and_open_each_ticket_once(
    pg_url: str,
) -> None:
    """Two replicas claim the same lanes at once, senders with tickets on several lanes among
    them: each lane is taken once, each ticket has one thread and each sender one live
    smith, and a lane left without inputs (its sender's smith the other replica's) starts
    its ticket in the turn."""
    replicas = [Database(DatabaseSettings(url=pg_url)) for _ in range(2)]
    await upgrade(replicas[0].engine)
    stores = [Store(db) for db in replicas]
    try:
        agent_id = (await stores[0].ensure_agent("support", "Support")).id
        tickets = {f"t:{n}": f"u:{n % 7}" for n in range(60)}
        for n, (ticket, sender) in enumerate(tickets.items()):
            assert await stores[n % 2].inbox_put(_asked(f"k{n}", ticket, sender), "support")
        claimed: list[LaneClaim] = []

        async def claim_all(store: Store) -> None:
            while True:
                taken = await store.claim_turns(
                    limit=4, lease_seconds=30, agent_ids={"support": agent_id}, history=5
                )
                if not taken:
                    return
                claimed.extend(taken)

        await asyncio.gather(*(claim_all(store) for store in stores))
        assert sorted(c.items[0].message.thread_external_id for c in claimed) == sorted(tickets)
        for claim in claimed:
            message = claim.items[0].message
            if claim.prepared is None:
                thread, smith, _ = await stores[0].start_thread(message, agent_id, history=5)
            else:
                thread, smith = claim.prepared.thread, claim.prepared.smith
            assert (thread.external_id, smith.external_id) == (
                message.thread_external_id, message.smith_external_id
            )
            assert thread == await stores[0].find_thread(agent_id, message.thread_external_id)
        live = await stores[0].list_smiths(agent_id=agent_id)
        assert sorted(s.external_id or "" for s in live) == [f"u:{n}" for n in range(7)]
    finally:
        for db in replicas:
            await db.dispose()


async def test_a_claim_whose_statement_fails_is_taken_in_a_transaction_instead(
    counted: tuple[Store, ServerExchanges], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one statement failing keeps nothing; the lanes are then claimed as on SQLite, with
    their inputs."""
    store, _ = counted
    agent_id = (await store.ensure_agent("support", "Support")).id
    assert await store.inbox_put(_asked("k1", "t:1", "u:1"), "support")
    monkeypatch.setattr(folded, "CLAIM_TURNS", text("SELECT 1 / 0 AS claimed_lane"))
    (claim,) = await store.claim_turns(
        limit=5, lease_seconds=30, agent_ids={"support": agent_id}, history=5
    )
    assert claim.prepared is not None and claim.prepared.started
    assert claim.prepared.thread == await store.find_thread(agent_id, "t:1")
    assert await store.claim_lanes(limit=5, lease_seconds=30) == []


async def test_a_lane_whose_claimed_inputs_cannot_be_read_is_still_the_claim_s(
    counted: tuple[Store, ServerExchanges], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement is committed when its rows are read: a lane whose inputs fail to be made
    out comes without them (its turn reads them itself), the others with theirs."""
    store, _ = counted
    agent_id = (await store.ensure_agent("support", "Support")).id
    for n in range(2):
        assert await store.inbox_put(_asked(f"k{n}", f"t:{n}", f"u:{n}"), "support")
    made_out = store_runs._prepared_of

    def fails_on_t1(row: Any) -> PreparedTurn | None:
        if row["thr__external_id"] == "t:1":
            raise ValueError("unreadable")
        return made_out(row)

    monkeypatch.setattr(store_runs, "_prepared_of", fails_on_t1)
    claims = await store.claim_turns(
        limit=5, lease_seconds=30, agent_ids={"support": agent_id}, history=5
    )
    prepared = {c.items[0].message.thread_external_id: c.prepared for c in claims}
    assert sorted(prepared) == ["t:0", "t:1"]
    assert prepared["t:1"] is None and prepared["t:0"] is not None
    assert await store.claim_lanes(limit=5, lease_seconds=30) == []



async def test_a_new_ticket_is_not_opened_under_a_smith_deleted_while_the_claim_ran(
    counted: tuple[Store, ServerExchanges], pg_url: str
) -> None:
    """The sender's live smith is deleted (archived, its external id freed) while the claim
    brings its name up to date: the claim waits for the deletion on the smith's row, and the
    ticket is opened under a new smith of the sender (by the claim or by its turn) — never
    under the deleted one, with its memories."""
    store, _ = counted
    agent_id = (await store.ensure_agent("support", "Support")).id
    deleted = await store.ensure_smith("u:ann", agent_id, display_name="Ann")

    def remember(conn: Connection) -> None:
        conn.execute(insert(memories).values(smith_id=deleted.id, fact="ann's card", created_at=now()))

    await store.db.run_tx(remember)
    assert await store.inbox_put(_asked("k1", "t:ann", "u:ann", display_name="Ann B."), "support")
    replica = Database(DatabaseSettings(url=pg_url))
    try:
        async with replica.engine.connect() as conn:
            await conn.execute(
                update(smiths).where(smiths.c.id == deleted.id).values(archived_at=now())
            )
            claiming = asyncio.create_task(store.claim_turns(
                limit=5, lease_seconds=30, agent_ids={"support": agent_id}, history=5
            ))
            await _until_a_claim_waits_on_a_lock(store.db)
            await conn.commit()
        (claim,) = await claiming
    finally:
        await replica.dispose()

    if claim.prepared is None:
        assert await store.find_thread(agent_id, "t:ann") is None
        thread, smith, inputs = await store.start_thread(
            claim.items[0].message, agent_id, history=5
        )
    else:
        thread, smith, inputs = claim.prepared.thread, claim.prepared.smith, claim.prepared.inputs
    assert (smith.external_id, smith.display_name, smith.archived_at) == ("u:ann", "Ann B.", None)
    assert smith.id != deleted.id and thread.smith_id == smith.id and inputs.memories == ()
    assert thread == await store.find_thread(agent_id, "t:ann")


@pytest.mark.parametrize("name", [None, "Ann"])
async def test_a_new_ticket_of_a_live_smith_with_nothing_new_is_opened_with_the_claim(
    counted: tuple[Store, ServerExchanges], name: str | None
) -> None:
    """A new ticket whose message brings its sender's live smith no new name nor profile (no
    name at all, or the one it has) is opened with the claim under that smith, untouched."""
    store, _ = counted
    agent_id = (await store.ensure_agent("support", "Support")).id
    ann = await store.ensure_smith("u:ann", agent_id, display_name="Ann", metadata={"plan": "pro"})
    assert await store.inbox_put(
        _asked("k1", "t:ann", "u:ann", display_name=name, profile={"plan": "pro"}), "support"
    )
    (claim,) = await store.claim_turns(
        limit=5, lease_seconds=30, agent_ids={"support": agent_id}, history=5
    )
    assert claim.prepared is not None and claim.prepared.started
    assert claim.prepared.smith == ann == await store.get_smith(ann.id)
    assert claim.prepared.thread == await store.find_thread(agent_id, "t:ann")
    assert claim.prepared.thread.smith_id == ann.id


# -- a lane written between a claim's snapshot and its lock ----------------------------------

_PAUSED_CLAIM = "paused claim"
_PAUSE = 1_765_042  # the advisory lock a paused claim waits for


async def _pausing_claims(store: Store, pg_url: str) -> Database:
    """A second replica whose claims, once their statement's snapshot is taken, wait while the
    test holds the advisory lock ``_PAUSE``: a statement-level trigger fires as the claim's
    UPDATE of the lanes starts, before any lane is locked (test-only; other sessions' updates
    of the lanes go on)."""

    def install(conn: Connection) -> None:
        conn.execute(text(f"""
            CREATE FUNCTION pause_claim() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF current_setting('application_name') = '{_PAUSED_CLAIM}' THEN
                    PERFORM pg_advisory_xact_lock_shared({_PAUSE});
                END IF;
                RETURN NULL;
            END $$
        """))
        conn.execute(text(
            "CREATE TRIGGER pause_claim BEFORE UPDATE ON lanes "
            "FOR EACH STATEMENT EXECUTE FUNCTION pause_claim()"
        ))

    await store.db.run_tx(install)
    return Database(
        DatabaseSettings(url=pg_url),
        connect_args={"server_settings": {"application_name": _PAUSED_CLAIM}},
    )


@pytest.mark.parametrize("path", ["statement", "transaction"])
async def test_a_turn_that_commits_after_a_claim_s_snapshot_is_not_answered_again(
    counted: tuple[Store, ServerExchanges], pg_url: str, monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    """A slow turn, its lease run out, commits (its messages done, its lane given back) after
    another replica's claim took its snapshot and before the claim reached the lane. The lane
    is free again on its newest row, but the snapshot still has its messages pending: the
    claim leaves the lane (they would be answered twice), on the one statement as in the
    transaction that stands in for it; the lane's next message is claimed as ever."""
    store, _ = counted
    agent_id = (await store.ensure_agent("support", "Support")).id
    assert await store.inbox_put(_asked("k1", "t:1", "u:1"), "support")
    claim_turns = {"limit": 5, "lease_seconds": 30, "agent_ids": {"support": agent_id},
                   "history": 5}
    (slow,) = await store.claim_turns(**claim_turns)
    assert slow.prepared is not None
    await store.db.run_tx(lambda conn: conn.execute(text(
        "UPDATE lanes SET lease_expires_at = lease_expires_at - 3600"
    )))
    if path == "transaction":
        monkeypatch.setattr(folded, "CLAIM_TURNS", text("SELECT 1 / 0 AS claimed_lane"))
    replica = await _pausing_claims(store, pg_url)
    try:
        async with store.db.engine.connect() as conn:
            await conn.execute(text(f"SELECT pg_advisory_lock({_PAUSE})"))
            claiming = asyncio.create_task(Store(replica).claim_turns(**claim_turns))
            await _until_a_claim_waits_on_a_lock(store.db)
            run = _run(slow.prepared.thread.id, slow.prepared.smith.id, agent_id, now())
            reply = Action(id=action_id(run.id, 0), run_id=run.id,
                           thread_id=slow.prepared.thread.id, channel="test",
                           kind=ActionKind.REPLY, text="hello")
            await store.commit_turn(slow, run, [reply], thread_change=ThreadChange())
            await conn.execute(text(f"SELECT pg_advisory_unlock({_PAUSE})"))
        assert await claiming == []
    finally:
        await replica.dispose()

    (done,) = await store.inbox_rows([("test", "k1")])
    assert (done.status.value, done.run_id) == ("done", run.id)
    assert [e.action.id for e in await store.outbox_entries()] == [reply.id]
    assert await store.inbox_put(_asked("k2", "t:1", "u:1"), "support")
    (later,) = await store.claim_turns(**claim_turns)
    assert [item.message.dedup_key for item in later.items] == ["k2"]
