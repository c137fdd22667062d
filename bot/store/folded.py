"""A turn's store units folded into one PostgreSQL statement each.

Through asyncpg a transaction costs two exchanges with the server beyond its statements
(``BEGIN`` and ``COMMIT`` are each sent and waited for), and every statement is one more. A
statement on its own is atomic, and data-modifying CTEs let one statement do what a unit did in
several: so the inbox write, the lane claim and the commit of a finished turn are each one
statement. The inbox write and the commit are sent outside a transaction
(``Database.run_each``); the claim stays in the transaction of the turn's reads, so its lease
and those reads commit together. A turn on a new ticket went from 23 exchanges to 11 that way,
to 9 with the ticket read in one statement (``statements.TICKET``), and to 8 with a new
ticket's smith and thread inserted in one (``statements.NEW_TICKET``); a known ticket's from 11
to 8 with its history read in one (``HISTORY``). Counted on the wire by
``tests/pipeline/test_round_trips.py``.

The rows ride in as one ``jsonb`` array (``jsonb_populate_recordset`` over the table's own row
type), so each statement's text is the same whatever the number of rows: prepared once per
connection and its compiled form cached, where a multi-row ``VALUES`` was a new statement per
batch size. SQLite keeps the Core statements of ``bot.store.statements``: there a unit is
already one hop to the writer thread, whatever it holds.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table, Text, column, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import TextualSelect

from bot.store.database import NOTICE_CHANNEL
from bot.store.schema import inbox, memories, outbox, runs, tool_calls

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _columns(table: Table) -> list[str]:
    """The columns a row of ``table`` is written with: all but an identity key."""
    return [
        c.name for c in table.c if not (c.primary_key and c.autoincrement is True)
    ]


def _populate(table: Table, param: str, alias: str) -> tuple[str, str]:
    """``INSERT INTO table (…)`` and ``SELECT …`` of the rows in the jsonb array ``param``, in
    the array's order (so identity keys follow it)."""
    names = _columns(table)
    listed = ", ".join(names)
    # A JSON ``null`` comes out of a record as SQL NULL; a required JSON column keeps it as
    # JSON, as the Core insert stored it.
    selected = ", ".join(
        f"coalesce({alias}.{name}, 'null'::jsonb)"
        if isinstance(table.c[name].type.dialect_impl(_PG), JSONB) and not table.c[name].nullable
        else f"{alias}.{name}"
        for name in names
    )
    rows = f"jsonb_populate_recordset(NULL::{table.name}, CAST(:{param} AS jsonb))"
    return (
        f"INSERT INTO {table.name} ({listed})",
        f"SELECT {selected} FROM {rows} WITH ORDINALITY AS {alias}",
    )


def rows_json(rows: list[dict[str, Any]]) -> str:
    """Rows as the jsonb array parameter the statements here read (floats round-trip exactly:
    ``json`` writes their shortest exact form)."""
    return json.dumps(rows, separators=(",", ":"))


_insert_inbox, _select_inbox = _populate(inbox, "rows", "r")
# The rows of single-message deliveries, each one new unless stored already; the lanes of the
# new ones (kept if they exist); a notice to other processes when any is new. The new rows come
# back, with the count of notices sent (the notice only runs when asked for by the SELECT).
WRITE_MESSAGES: TextClause = text(
    f"""
    WITH new AS (
        {_insert_inbox} {_select_inbox} ORDER BY r.ordinality
        ON CONFLICT (source, dedup_key) DO NOTHING
        RETURNING id, source, dedup_key, lane, received_at
    ), new_lanes AS (
        INSERT INTO lanes (key, touched_at)
        SELECT lane, min(received_at) FROM new GROUP BY lane
        ON CONFLICT (key) DO NOTHING
    ), notice AS (
        SELECT pg_notify('{NOTICE_CHANNEL}', :notice) FROM (SELECT 1 FROM new LIMIT 1) AS any_new
    )
    SELECT new.id, new.source, new.dedup_key, (SELECT count(*) FROM notice) AS noticed FROM new
    """
)

# Up to ``limit`` lanes with live messages and a free (or expired) lease, leased under one
# token; one row per pending message of each (``inbox.*`` NULL for a lane with none left),
# ``was_expiring``: the lane's lease before, set when it ran out rather than was given back.
# As ``CLAIMABLE_LANES``, ``LEASE_LANES`` and ``PENDING_OF_LANES`` in one statement; its
# messages read from the same snapshot the lanes were found in.
CLAIM_LANES: TextClause = text(
    """
    WITH found AS (
        SELECT lanes.key, lanes.lease_expires_at FROM lanes
        WHERE lanes.key IN (SELECT inbox_live.lane FROM inbox_live)
          AND (lanes.lease_expires_at IS NULL OR lanes.lease_expires_at < :at)
        ORDER BY lanes.touched_at, lanes.key
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), leased AS (
        UPDATE lanes SET lease_token = :token, lease_expires_at = :expires
        FROM found WHERE lanes.key = found.key
        RETURNING lanes.key AS claimed_lane, found.lease_expires_at AS was_expiring,
                  lanes.touched_at AS claimed_touched
    )
    SELECT leased.claimed_lane, leased.was_expiring, inbox.*
    FROM leased
    LEFT JOIN inbox_live ON inbox_live.lane = leased.claimed_lane
    LEFT JOIN inbox ON inbox.id = inbox_live.id
    ORDER BY leased.claimed_touched, leased.claimed_lane, inbox.id
    """
)

_insert_run, _select_run = _populate(runs, "run", "r")
_insert_calls, _select_calls = _populate(tool_calls, "calls", "c")
_insert_actions, _select_actions = _populate(outbox, "actions", "a")
# ``_select_actions`` with the first action leased to this process's sender when it may be
# handed over (nothing of its thread waits before it, asked before these actions are written).
_HANDED = "(a.ordinality = 1 AND :hand_over AND NOT (SELECT action_waiting FROM thread))"
_select_handed = (
    _select_actions.replace(
        "a.lease_token", f"CASE WHEN {_HANDED} THEN CAST(:handed_token AS text) END"
    )
    .replace(
        "a.lease_expires_at",
        f"CASE WHEN {_HANDED} THEN CAST(:handed_expires AS double precision) END",
    )
    .replace("a.attempts", f"CASE WHEN {_HANDED} THEN 1 ELSE 0 END")
)
assert _select_handed.count("CASE") == 3, "outbox columns renamed: update _select_handed"
_RELEASED = "EXISTS (SELECT 1 FROM released)"
# A finished turn in one statement: the lane given back (fenced by its token), the run, its
# tool calls, the thread's title and state, its actions, new memories and the claimed
# messages done — all written only when the lane was still the claim's; the thread comes back
# as the turn leaves it (no row: the lease was lost, nothing was written), with whether an
# earlier action of it waited and whether other senders were told of new actions.
COMMIT_TURN: TextClause = text(
    f"""
    WITH released AS (
        UPDATE lanes SET lease_token = NULL, lease_expires_at = NULL, touched_at = :at
        WHERE key = :lane AND lease_token = :token
        RETURNING key
    ), new_run AS (
        {_insert_run} {_select_run} WHERE {_RELEASED}
    ), new_calls AS (
        {_insert_calls} {_select_calls} WHERE {_RELEASED}
    ), thread AS (
        UPDATE threads SET
            title = coalesce(threads.title, :new_title),
            state = coalesce(:state, threads.state),
            control = coalesce(:control, threads.control),
            updated_at = :at
        WHERE threads.id = :thread_id AND {_RELEASED}
        RETURNING threads.*, EXISTS (
            SELECT 1 FROM outbox_live AS waiting WHERE waiting.thread_id = threads.id
        ) AS action_waiting
    ), new_actions AS (
        {_insert_actions} {_select_handed} WHERE {_RELEASED} ORDER BY a.ordinality
    ), new_memories AS (
        INSERT INTO {memories.name} (smith_id, fact, created_at)
        SELECT CAST(:smith_id AS text), fact, CAST(:at AS double precision)
        FROM unnest(CAST(:facts AS text[])) AS fact
        WHERE {_RELEASED}
        ON CONFLICT (smith_id, fact) DO NOTHING
    ), done AS (
        UPDATE inbox SET status = 'done', run_id = :run_id, finished_at = :at
        WHERE inbox.id = ANY(CAST(:ids AS bigint[])) AND {_RELEASED}
    ), notice AS (
        SELECT pg_notify('{NOTICE_CHANNEL}', :notice) FROM thread
        WHERE :action_count > CASE WHEN :hand_over AND NOT thread.action_waiting THEN 1 ELSE 0 END
    )
    SELECT thread.*, (SELECT count(*) FROM notice) AS noticed FROM thread
    """
)

# A known ticket's history in one statement, where four read the smith's memories, the
# thread's latest runs, their tool calls and what people wrote in it: the memories (NULL
# unless ``with_facts``), oldest first; the latest ``history`` runs, oldest first, each as
# ``[run, [tool call, …]]`` in ``jsonb``; the latest ``history`` messages people wrote, oldest
# first, each as ``[created_at, author_name, text]``. ``jsonb`` writes a ``double precision``
# as its shortest exact digits, so a float column comes back exact (``float()`` of it).
HISTORY: TextualSelect = text(
    """
    SELECT
        CASE WHEN :with_facts THEN ARRAY(
            SELECT memories.fact FROM memories WHERE memories.smith_id = :smith_id
            ORDER BY memories.id LIMIT :facts
        ) END AS facts,
        (
            SELECT coalesce(jsonb_agg(jsonb_build_array(to_jsonb(r), (
                SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.seq), '[]'::jsonb)
                FROM tool_calls AS c WHERE c.run_id = r.id
            )) ORDER BY r.started_at, r.id), '[]'::jsonb)
            FROM (
                SELECT * FROM runs WHERE runs.thread_id = :thread_id
                ORDER BY runs.started_at DESC, runs.id DESC LIMIT :history
            ) AS r
        ) AS runs,
        (
            SELECT coalesce(jsonb_agg(jsonb_build_array(p.created_at, p.author_name, p.text)
                                      ORDER BY p.created_at, p.id), '[]'::jsonb)
            FROM (
                SELECT * FROM person_messages WHERE person_messages.thread_id = :thread_id
                ORDER BY person_messages.created_at DESC, person_messages.id DESC
                LIMIT :history
            ) AS p
        ) AS said
    """
).columns(
    column("facts", postgresql.ARRAY(Text)), column("runs", JSONB), column("said", JSONB)
)
