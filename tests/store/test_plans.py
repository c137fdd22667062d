"""The store finds its rows by index: with a few thousand threads stored (and the planner's
statistics taken), no statement of a turn, a lookup, the console inbox, analytics, retention or
an erasure reads a stored table whole — the plans that keep their cost flat as the store grows
to a million threads (``bench/performance.py --million --plans`` measures that).

Each statement the store actually ran is explained with the parameters it ran with. A partial
index (live work only) may be read whole; so may an index read in order under a ``LIMIT``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event, insert

from bot.config import AnalyticsSettings, DatabaseSettings
from bot.domain import (
    Action,
    ActionKind,
    InboundMessage,
    Run,
    StopReason,
    Usage,
    action_id,
    new_id,
    now,
)
from bot.store.analytics import Analytics, Window
from bot.store.attention import needing_a_person
from bot.store.database import Database
from bot.store.erasure import Erasures
from bot.store.inbox import lane_key
from bot.store.migrate import upgrade
from bot.store.schema import inbox, lanes, outbox, runs, smiths, threads
from bot.store.store import Store, ThreadChange

STORED = 3000
# Tables this many rows long are "stored": reading one whole is what must not happen.
GROWN = 1000


async def _seed(store: Store, agent_id: str) -> None:
    at = time.time() - 86_400
    rows: dict[Any, list[dict[str, Any]]] = {
        t: [] for t in (smiths, threads, lanes, runs, inbox, outbox)
    }
    for i in range(STORED):
        smith, thread, run = f"smt_s{i}", f"thr_s{i}", f"run_s{i}"
        state = "closed" if i % 2 else "open"
        rows[smiths].append(
            {
                "id": smith,
                "agent_id": agent_id,
                "external_id": f"seed:user-{i}",
                "display_name": None,
                "customer_id": None,
                "metadata": {},
                "auto_memory": False,
                "pinned_version": None,
                "archived_at": None,
                "created_at": at,
                "updated_at": at,
            }
        )
        rows[threads].append(
            {
                "id": thread,
                "smith_id": smith,
                "agent_id": agent_id,
                "external_id": f"seed:{i}",
                "channel": "test",
                "state": state,
                "control": "bot",
                "title": "seeded",
                # Retention finds three of them expired.
                "metadata": {},
                "created_at": at + i,
                "updated_at": at + i if i < 6 else now(),
            }
        )
        rows[lanes].append(
            {
                "key": lane_key("support", f"seed:{i}"),
                "lease_token": None,
                "lease_expires_at": None,
                "touched_at": at,
            }
        )
        rows[runs].append(
            {
                "id": run,
                "thread_id": thread,
                "smith_id": smith,
                "agent_id": agent_id,
                "agent_version": None,
                "input": [],
                "output_text": "ok",
                "stop_reason": "end_turn",
                "model": "seed",
                "usage": {},
                "rag_results": [],
                "error": None,
                "started_at": at + i,
                "finished_at": at + i,
            }
        )
        rows[inbox].append(
            {
                "source": "seed",
                "dedup_key": f"seed-{i}",
                "lane": lane_key("support", f"seed:{i}"),
                "payload": {"smith_external_id": f"seed:user-{i}", "text": "hi"},
                "status": "done",
                "attempts": 0,
                "run_id": run,
                "error": None,
                "received_at": at,
                "finished_at": at,
            }
        )
        rows[outbox].append(
            {
                "id": f"act_s{i}",
                "run_id": run,
                "thread_id": thread,
                "channel": "test",
                "kind": "reply",
                "payload": {},
                "status": "done",
                "attempts": 1,
                "next_attempt_at": at,
                "lease_token": None,
                "lease_expires_at": None,
                "remote_id": f"msg-{i}",
                "last_error": None,
                "created_at": at,
                "updated_at": at,
            }
        )

    def work(conn: Any) -> None:
        for table, table_rows in rows.items():
            conn.execute(insert(table), table_rows)

    await store.db.run_tx(work)


class Statements:
    """Every distinct statement the store's engines run while recording."""

    def __init__(self, store: Store) -> None:
        self.seen: dict[str, Any] = {}
        self.recording = False
        for engine in (store.db.engine.sync_engine, store.db._sync_engine):
            if engine is not None:
                event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(
        self, _c: Any, _cur: Any, statement: str, params: Any, _x: Any, many: bool
    ) -> None:
        if self.recording and re.match(
            r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)", statement, re.IGNORECASE
        ):
            self.seen.setdefault(statement, params[0] if many else params)


async def _a_turn(store: Store) -> None:
    message = InboundMessage(
        source="test",
        dedup_key="new-1",
        thread_external_id="test:new",
        smith_external_id="test:someone",
        text="hello",
    )
    known = InboundMessage(
        source="test",
        dedup_key="known-1",
        thread_external_id="seed:17",
        smith_external_id="seed:user-17",
        text="again",
    )
    await store.inbox_put(message, "support")
    await store.inbox_put(known, "support")
    agent = await store.ensure_agent("support", "Support")
    # The claim with what the turns read: a new ticket started, a known one's history.
    claims = {
        c.lane: c
        for c in await store.claim_turns(
            limit=5, lease_seconds=30, agent_ids={"support": agent.id}, history=5
        )
    }
    claim = claims[lane_key("support", "test:new")]
    assert claim.prepared is not None and claim.prepared.started
    assert claims[lane_key("support", "seed:17")].prepared is not None
    # The turn's own reads, when its claim came without them.
    found = await store.start_thread(claim.items[0].message, agent.id, history=5)
    assert await store.thread_for_turn(agent.id, "seed:17", history=5) is not None
    thread, smith, _ = found
    run_id, at = new_id("run"), now()
    run = Run(
        id=run_id,
        thread_id=thread.id,
        smith_id=smith.id,
        agent_id=agent.id,
        agent_version=None,
        input=[],
        output_text="hi",
        stop_reason=StopReason.END_TURN,
        model="scripted",
        usage=Usage(),
        rag_results=[],
        error=None,
        started_at=at,
        finished_at=at,
    )
    action = Action(
        id=action_id(run_id, 0),
        run_id=run_id,
        thread_id=thread.id,
        channel="test",
        kind=ActionKind.REPLY,
        text="hi",
    )
    await store.commit_turn(claim, run, [action], thread_change=ThreadChange())
    for sending in await store.claim_actions(limit=5, lease_seconds=30):
        await store.action_done(sending, "remote-new")


async def _the_rest(store: Store) -> None:
    await store.inbox_seen("seed", "seed-17")
    await store.find_thread((await store.ensure_agent("support", "Support")).id, "seed:17")
    await store.find_threads_by_external("seed:17")
    await store.get_run("run_s17")
    await store.thread_runs("thr_s17")
    await store.feedback.run_of_message("test", "msg-17")
    await store.list_runs(limit=20)
    await store.list_threads(limit=20)
    await needing_a_person(store.db, at=now())
    await Analytics(store.db, AnalyticsSettings()).report(Window(now() - 3600, now() + 60))
    await Erasures(store.db).erase_closed_threads(days=0.5)
    await Erasures(store.db).erase_smith("smt_s18", requested_by="cli")


async def _plans(store: Store, statements: Statements) -> dict[str, list[str]]:
    """Each statement's reads of a grown table that are not index lookups."""
    postgresql = not store.db.is_sqlite
    async with store.db.engine.connect() as conn:
        if postgresql:
            await conn.exec_driver_sql("ANALYZE")
            partial_query = (
                "SELECT c.relname FROM pg_index i JOIN pg_class c "
                "ON c.oid = i.indexrelid WHERE i.indpred IS NOT NULL"
            )
        else:
            await conn.exec_driver_sql("ANALYZE")
            partial_query = (
                "SELECT name FROM sqlite_master WHERE type='index' AND sql LIKE '% WHERE %'"
            )
        partial = {r[0] for r in await conn.exec_driver_sql(partial_query)}
        grown = {t.name for t in (smiths, threads, lanes, runs, inbox, outbox)}
        found: dict[str, list[str]] = {}
        for statement, params in statements.seen.items():
            limited = " LIMIT " in statement
            args = tuple(params or ())
            if postgresql:
                plan = (
                    await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, args)
                ).scalar_one()
                nodes = _pg_nodes((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
                whole = [
                    f"{n['Node Type']} {n['Relation Name']} {n.get('Index Name', '')}"
                    for n in nodes
                    if n.get("Relation Name") in grown
                    and n["Node Type"] != "ModifyTable"
                    and (
                        n["Node Type"] == "Seq Scan"
                        or (
                            "Index Cond" not in n
                            and "Recheck Cond" not in n
                            and n.get("Index Name") not in partial
                            and not limited
                        )
                    )
                ]
            else:
                details = [
                    str(r[-1])
                    for r in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, args)
                ]
                sorts = any("TEMP B-TREE FOR ORDER BY" in d for d in details)
                whole = []
                for detail in details:
                    scan = re.match(r"SCAN (\w+)", detail)
                    index = re.search(r"USING (?:COVERING )?INDEX (\w+)", detail)
                    if scan is None or scan.group(1) not in grown:
                        continue
                    if index is not None and (index.group(1) in partial or (limited and not sorts)):
                        continue
                    whole.append(detail)
            if whole:
                found[" ".join(statement.split())[:160]] = whole
        await conn.rollback()
    return found


def _pg_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", ()) for n in _pg_nodes(child))]


async def _recorded(store: Store, work: Callable[[Store], Awaitable[None]]) -> Statements:
    agent = await store.ensure_agent("support", "Support")
    await _seed(store, agent.id)
    statements = Statements(store)
    statements.recording = True
    await work(store)
    statements.recording = False
    return statements


async def test_a_turn_reads_no_stored_table_whole(store: Store) -> None:
    statements = await _recorded(store, _a_turn)
    assert len(statements.seen) >= 10, "the turn's statements were recorded"
    assert await _plans(store, statements) == {}


async def test_lookups_console_analytics_retention_and_erasure_read_no_table_whole(
    store: Store,
) -> None:
    statements = await _recorded(store, _the_rest)
    assert len(statements.seen) >= 20, "their statements were recorded"
    assert await _plans(store, statements) == {}


# -- churn ---------------------------------------------------------------------------------------

CHURNED = 1000


async def _churn(store: Store) -> None:
    """CHURNED messages and actions stored ``pending`` and then finished, as turns finish them:
    on PostgreSQL their old row versions and index entries stay behind until a vacuum."""
    at = time.time()
    await store.inbox.write_deliveries(
        [
            [
                {
                    "source": "churn",
                    "dedup_key": f"churn-{i}",
                    "lane": lane_key("support", f"seed:{i}"),
                    "payload": {"smith_external_id": f"seed:user-{i}", "text": "hi"},
                    "status": "pending",
                    "attempts": 0,
                    "received_at": at,
                }
            ]
            for i in range(CHURNED)
        ]
    )

    def work(conn: Any) -> None:
        conn.execute(
            insert(outbox),
            [
                {
                    "id": f"act_c{i}", "run_id": f"run_s{i}", "thread_id": f"thr_s{i}",
                    "channel": "test", "kind": "reply", "payload": {}, "status": "pending",
                    "attempts": 0, "next_attempt_at": at, "lease_token": None,
                    "lease_expires_at": None, "remote_id": None, "last_error": None,
                    "created_at": at, "updated_at": at,
                }
                for i in range(CHURNED)
            ],
        )

    await store.db.run_tx(work)
    await store.db.run_tx(
        lambda conn: conn.exec_driver_sql("UPDATE inbox SET status = 'done' WHERE source = 'churn'")
    )
    await store.db.run_tx(
        lambda conn: conn.exec_driver_sql(
            "UPDATE outbox SET status = 'done', remote_id = 'sent' WHERE id LIKE 'act_c%'"
        )
    )


async def _autovacuum_fixed_thresholds(store: Store, dead: int) -> None:
    """What autovacuum does after ``dead`` rows died in each table (this test server may run
    without it): vacuum the tables whose storage parameters set a fixed threshold (scale
    factor 0) below that. The stored tables wait for 20 % of their size: at a million rows,
    200,000 dead ones."""
    async with store.db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = await conn.exec_driver_sql(
            "SELECT relname, reloptions FROM pg_class "
            "WHERE 'autovacuum_vacuum_scale_factor=0' = ANY(reloptions)"
        )
        for name, options in rows.all():
            threshold = dict(o.split("=", 1) for o in options)["autovacuum_vacuum_threshold"]
            if dead > int(threshold):
                await conn.exec_driver_sql(f'VACUUM ANALYZE "{name}"')


async def _claim_blocks(store: Store) -> dict[str, int]:
    """The shared buffers each statement of an (empty) lane claim and action claim reads, by
    statement: ``EXPLAIN (ANALYZE, BUFFERS)`` run twice, the second count kept (a first read
    may mark dead index entries so that later ones skip them)."""
    statements = Statements(store)
    statements.recording = True
    assert await store.claim_lanes(limit=8, lease_seconds=30) == []
    assert await store.claim_actions(limit=8, lease_seconds=30) == []
    statements.recording = False
    blocks: dict[str, int] = {}
    async with store.db.engine.connect() as conn:
        for statement, params in statements.seen.items():
            # On PostgreSQL the lane claim is one statement with its lease (``WITH …``); the
            # transaction is rolled back below, and an empty claim leases nothing anyway.
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            for _ in range(2):
                plan = (
                    await conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, tuple(params or ())
                    )
                ).scalar_one()
                top = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
            blocks[" ".join(statement.split())[:80]] = top.get("Shared Hit Blocks", 0) + top.get(
                "Shared Read Blocks", 0
            )
        await conn.rollback()
    return blocks


async def test_claims_read_no_more_with_finished_work_not_yet_vacuumed(pg_url: str) -> None:
    """PostgreSQL: a thousand messages and actions finished since the last vacuum of the
    stored tables add nothing to what a claim reads (it read every dead entry of the partial
    indexes on each call before the live work had tables of its own)."""
    db = Database(DatabaseSettings(url=pg_url))
    await upgrade(db.engine)
    store = Store(db)
    try:
        agent = await store.ensure_agent("support", "Support")
        await _seed(store, agent.id)
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")
            await conn.commit()
        before = await _claim_blocks(store)
        assert len(before) >= 2, "the claims' reads were recorded"
        await _churn(store)
        await _autovacuum_fixed_thresholds(store, dead=CHURNED)
        after = await _claim_blocks(store)
        assert after.keys() == before.keys()
        grown = {s: (before[s], after[s]) for s in after if after[s] > before[s] + 3}
        assert grown == {}, "buffers read before and after the churn"
    finally:
        await db.dispose()


async def test_a_claim_s_plan_made_on_a_small_store_reads_no_more_once_it_has_grown(
    pg_url: str,
) -> None:
    """PostgreSQL: a pooled connection keeps a statement's generic plan until the tables are
    analyzed again, so the plan a turn's claim got while the store was nearly empty must
    still find a ticket by its keys when thousands of threads and smiths have been added (a
    plan that looked a ticket up by its agent alone read every thread of the agent)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    from bot.store import folded

    db = Database(DatabaseSettings(url=pg_url))
    await upgrade(db.engine)
    store = Store(db)
    compiled = folded.CLAIM_TURNS.compile(dialect=db.engine.dialect)
    raw = await asyncpg.connect(
        make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        agent = await store.ensure_agent("support", "Support")
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        await raw.execute(f"PREPARE claim AS {compiled}")

        async def claim_blocks(key: str, thread: str, smith: str) -> int:
            """The shared buffers a claim of one message's lane reads, by the kept plan."""
            message = InboundMessage(
                source="test", dedup_key=key, thread_external_id=thread,
                smith_external_id=smith, text="hi",
            )
            assert await store.inbox_put(message, "support")
            at = now()
            params = {
                "at": at, "limit": 1, "token": new_id("lse"), "expires": at + 30,
                "agent_ids": json.dumps({"support": agent.id}), "history": 5, "facts": 50,
            }
            values = ", ".join(
                repr(value) if isinstance(value, (int, float))
                else "'" + str(value).replace("'", "''") + "'"
                for value in (params[name] for name in compiled.positiontup or ())
            )
            plan = await raw.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim({values})"
            )
            top = json.loads(plan)[0]["Plan"]
            return int(top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0))

        known = InboundMessage(
            source="test", dedup_key="k0", thread_external_id="test:k1",
            smith_external_id="test:u1", text="hi",
        )
        await store.start_thread(known, agent.id, history=5)
        small = [
            await claim_blocks("n1", "test:n1", "test:u1"),
            await claim_blocks("k1", "test:k1", "test:u1"),
        ]
        await raw.execute(
            f"""
            INSERT INTO smiths (id, agent_id, external_id, metadata, auto_memory, created_at,
                                updated_at)
            SELECT 'smt_g' || i, '{agent.id}', 'grown:u' || i, '{{}}', true, 0, 0
            FROM generate_series(1, {STORED}) AS i;
            INSERT INTO threads (id, smith_id, agent_id, external_id, channel, state, control,
                                 metadata, created_at, updated_at)
            SELECT 'thr_g' || i, 'smt_g' || i, '{agent.id}', 'grown:' || i, 'test', 'open',
                   'bot', '{{}}', 0, 0
            FROM generate_series(1, {STORED}) AS i;
            """
        )
        grown = [
            await claim_blocks("n2", "test:n2", "test:u2"),
            await claim_blocks("k2", "grown:17", "grown:u17"),
        ]
        generic = await raw.fetchval(
            "SELECT generic_plans FROM pg_prepared_statements WHERE name = 'claim'"
        )
        assert generic == 4, "every claim ran the plan made first"
        assert all(g - s <= 20 for s, g in zip(small, grown)), (small, grown)
    finally:
        await raw.close()
        await db.dispose()
