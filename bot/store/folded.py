"""A turn's store units folded into one PostgreSQL statement each.

Through asyncpg a transaction costs two exchanges with the server beyond its statements
(``BEGIN`` and ``COMMIT`` are each sent and waited for), and every statement is one more. A
statement on its own is atomic, and data-modifying CTEs let one statement do what a unit did in
several: so the inbox write, a turn's claim with everything it reads and writes, and the
commit of a finished turn are each one statement, sent outside a transaction
(``Database.run_each``). A turn on a new ticket went from 23 exchanges to 11 with the inbox
write, the lane claim and the commit folded (the claim still in a transaction with the turn's
reads), to 9 with the ticket read in one statement (``statements.TICKET``), to 8 with a new
ticket's smith and thread inserted in one (``statements.NEW_TICKET``) — a known ticket's from
11 to 8 with its history read in one (``HISTORY``) — and to 4 for both with the claim, the
ticket, its history or its new smith and thread one statement (``CLAIM_TURNS``). Counted on
the wire by ``tests/pipeline/test_round_trips.py``.

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

from bot.domain import Control, ThreadState
from bot.store.database import NOTICE_CHANNEL
from bot.store.schema import (
    agent_versions,
    inbox,
    memories,
    outbox,
    runs,
    smiths,
    threads,
    tool_calls,
)

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
# token (``leased``: each lane, ``was_expiring``: its lease before, set when it ran out rather
# than was given back). As ``CLAIMABLE_LANES`` and ``LEASE_LANES`` in one statement.
#
# Only a lane whose row is still the one this statement's snapshot has is leased: its messages
# are read from that snapshot. A row locked by ``FOR UPDATE`` is its newest version, rechecked
# against ``found``'s conditions alone; a lane whose turn committed after the snapshot (its
# lease had run out, or it was claimed and given back meanwhile) is free again by then, while
# the snapshot still has its messages pending — they would be answered twice. The UPDATE reads
# the lane as the snapshot has it, so its ``ctid`` differs from the locked row's when the lane
# was written since; such a lane is left to a later claim, whose snapshot has its messages as
# they are then.
_LEASED = """
    found AS (
        SELECT lanes.key, lanes.lease_expires_at, lanes.ctid AS locked FROM lanes
        WHERE lanes.key IN (SELECT inbox_live.lane FROM inbox_live)
          AND (lanes.lease_expires_at IS NULL OR lanes.lease_expires_at < :at)
        ORDER BY lanes.touched_at, lanes.key
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), leased AS (
        UPDATE lanes SET lease_token = :token, lease_expires_at = :expires
        FROM found WHERE lanes.key = found.key AND lanes.ctid = found.locked
        RETURNING lanes.key AS claimed_lane, found.lease_expires_at AS was_expiring,
                  lanes.touched_at AS claimed_touched
    )
"""
# The leased lanes, one row per pending message of each (``inbox.*`` NULL for a lane with none
# left), read from the same snapshot the lanes were found in (``PENDING_OF_LANES``).
_LEASED_MESSAGES = """
    SELECT leased.claimed_lane, leased.was_expiring, inbox.*{more}
    FROM leased
    LEFT JOIN inbox_live ON inbox_live.lane = leased.claimed_lane
    LEFT JOIN inbox ON inbox.id = inbox_live.id{joined}
    ORDER BY leased.claimed_touched, leased.claimed_lane, inbox.id
"""
CLAIM_LANES: TextClause = text(
    f"WITH {_LEASED} {_LEASED_MESSAGES.format(more='', joined='')}"
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

def _facts(smith: str) -> str:
    """The memories of the smith ``smith`` (an SQL expression), oldest first, as a text array."""
    return f"""ARRAY(
        SELECT memories.fact FROM memories WHERE memories.smith_id = {smith}
        ORDER BY memories.id LIMIT :facts
    )"""


def _runs_of(thread: str) -> str:
    """The latest ``:history`` runs of the thread ``thread``, oldest first, each as ``[run,
    [tool call, …]]`` in ``jsonb``."""
    return f"""(
        SELECT coalesce(jsonb_agg(jsonb_build_array(to_jsonb(r), (
            SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.seq), '[]'::jsonb)
            FROM tool_calls AS c WHERE c.run_id = r.id
        )) ORDER BY r.started_at, r.id), '[]'::jsonb)
        FROM (
            SELECT * FROM runs WHERE runs.thread_id = {thread}
            ORDER BY runs.started_at DESC, runs.id DESC LIMIT :history
        ) AS r
    )"""


def _said_in(thread: str) -> str:
    """The latest ``:history`` messages people wrote in the thread ``thread``, oldest first,
    each as ``[created_at, author_name, text]`` in ``jsonb``."""
    return f"""(
        SELECT coalesce(jsonb_agg(jsonb_build_array(p.created_at, p.author_name, p.text)
                                  ORDER BY p.created_at, p.id), '[]'::jsonb)
        FROM (
            SELECT * FROM person_messages WHERE person_messages.thread_id = {thread}
            ORDER BY person_messages.created_at DESC, person_messages.id DESC
            LIMIT :history
        ) AS p
    )"""


# A known ticket's history in one statement, where four read the smith's memories, the
# thread's latest runs, their tool calls and what people wrote in it: the memories (NULL
# unless ``with_facts``, ``_facts``), the runs (``_runs_of``) and what people wrote
# (``_said_in``). ``jsonb`` writes a ``double precision`` as its shortest exact digits, so a
# float column comes back exact (``float()`` of it).
HISTORY: TextualSelect = text(
    f"""
    SELECT
        CASE WHEN :with_facts THEN {_facts(":smith_id")} END AS facts,
        {_runs_of(":thread_id")} AS runs,
        {_said_in(":thread_id")} AS said
    """
).columns(
    column("facts", postgresql.ARRAY(Text)), column("runs", JSONB), column("said", JSONB)
)


def _labelled(alias: str, table: Table, prefix: str) -> str:
    """Every column of ``table`` under ``alias``, labelled ``prefix`` and its name."""
    return ", ".join(f"{alias}.{c.name} AS {prefix}{c.name}" for c in table.c)


def _object(value: str) -> str:
    """The ``jsonb`` value ``value`` when it is an object, else an empty one (``x or {}``)."""
    return f"CASE WHEN jsonb_typeof({value}) = 'object' THEN {value} ELSE '{{}}'::jsonb END"


def _outdated(smith: str) -> str:
    """Whether the message of ``ticket`` brings the smith ``smith`` a new name or profile
    (never NULL)."""
    return f"""({smith}.metadata || ticket.profile <> {smith}.metadata
            OR (ticket.m ->> 'display_name' IS NOT NULL
                AND ticket.m ->> 'display_name' IS DISTINCT FROM {smith}.display_name))"""


def _new_id(prefix: str) -> str:
    """A fresh id as ``bot.domain.new_id`` makes them: the prefix and a random UUID's hex."""
    return f"'{prefix}_' || replace(CAST(gen_random_uuid() AS text), '-', '')"


# A turn's claim in one statement: the lanes leased and their messages as ``CLAIM_LANES``,
# and with each lane what its turn reads, as ``Runs.prepare_turn_in`` reads or writes it in a
# claim's transaction (SQLite's, and PostgreSQL's should this statement fail), where the
# ticket (``statements.TICKET``), a new ticket's smith and thread (``statements.NEW_TICKET``)
# and a known one's history (``HISTORY``) were a statement each, ``BEGIN`` and ``COMMIT`` two
# exchanges more.
#
# The lane's first message (``asked``) names the agent (its slug, through ``:agent_ids``,
# slug → id, as the dispatcher knows them), the ticket and its sender. A known ticket's thread
# comes with the smith owning it and its history; a new ticket's thread is inserted under the
# sender's live smith (its name and profile brought up to date from the message, ``patched``)
# or, when none lives, under a new smith (``new_smith``: one per sender however many of its
# lanes the claim took, named as its first; a live smith another writer inserted meanwhile
# wins, and the ticket gets no thread here). A thread another writer inserted meanwhile wins
# as well. The version is the smith's pin, else the agent's live version. New ids are made
# in the statement (``gen_random_uuid``, PostgreSQL 13 and later), one per lane it takes.
# ``prepared.*`` (``for_lane`` … ``said``) is NULL where the turn must find out itself, as
# where ``prepare_turn_in`` gives None: an agent the caller does not know, a raced insert, a
# live smith to bring up to date that changed meanwhile (deleted, say).
_SMITH_NEW = ("id", "agent_id", "external_id", "display_name", "customer_id", "metadata",
              "auto_memory", "created_at", "updated_at")
_THREAD_NEW = ("id", "smith_id", "agent_id", "external_id", "channel", "state", "control",
               "title", "metadata", "created_at", "updated_at")
CLAIM_TURNS: TextClause = text(
    f"""
    WITH {_LEASED}, asked AS (
        SELECT DISTINCT ON (leased.claimed_lane) leased.claimed_lane AS lane,
               leased.claimed_touched AS touched, inbox.payload AS m,
               CAST(:agent_ids AS jsonb) ->> coalesce(inbox.payload ->> 'agent_slug', '')
                   AS agent_id
        FROM leased
        JOIN inbox_live ON inbox_live.lane = leased.claimed_lane
        JOIN inbox ON inbox.id = inbox_live.id
        ORDER BY leased.claimed_lane, inbox.id
    ), asked_ticket AS MATERIALIZED (
        -- Each lookup a subquery of its own, run for each lane by its unique index whatever
        -- the planner thinks of the tables' sizes: as joins, a plan made while they were
        -- small (and kept by the connection) filtered every thread and smith of the agent.
        SELECT asked.*, (
            SELECT thread.id FROM threads AS thread
            WHERE thread.agent_id = asked.agent_id
              AND thread.external_id = asked.m ->> 'thread_external_id'
        ) AS thread_id
        FROM asked
        WHERE asked.agent_id IN (SELECT agents.id FROM agents)
    ), ticket AS MATERIALIZED (
        SELECT asked_ticket.*, CASE WHEN thread_id IS NULL THEN (
                   SELECT live.id FROM smiths AS live
                   WHERE live.agent_id = asked_ticket.agent_id
                     AND live.external_id = asked_ticket.m ->> 'smith_external_id'
                     AND live.archived_at IS NULL
               ) END AS live_id,
               {_object("m -> 'profile'")} AS profile,
               CASE WHEN thread_id IS NULL THEN {_new_id("smt")} END AS new_smith_id,
               CASE WHEN thread_id IS NULL THEN {_new_id("thr")} END AS new_thread_id
        FROM asked_ticket
    ), new_smith AS (
        INSERT INTO smiths ({", ".join(_SMITH_NEW)})
        -- One smith per sender, as its first lane has it (an anonymous sender's lanes have
        -- one each); inserted in one order in every process, so that two claims inserting
        -- the same two smiths wait for each other in turn, not for each other at once.
        SELECT DISTINCT ON (agent_id, coalesce(m ->> 'smith_external_id', new_smith_id))
               new_smith_id, agent_id, m ->> 'smith_external_id', m ->> 'display_name', NULL,
               profile, coalesce(NOT (m ->> 'smith_external_id' LIKE 'anon:%'), FALSE), :at, :at
        FROM ticket WHERE thread_id IS NULL AND live_id IS NULL
        ORDER BY agent_id, coalesce(m ->> 'smith_external_id', new_smith_id), touched, lane
        ON CONFLICT (agent_id, external_id)
            WHERE archived_at IS NULL AND external_id IS NOT NULL DO NOTHING
        RETURNING smiths.*
    ), patched AS (
        UPDATE smiths SET
            display_name = coalesce(ticket.m ->> 'display_name', smiths.display_name),
            metadata = smiths.metadata || ticket.profile,
            updated_at = :at
        FROM ticket
        -- Rechecked on the smith as it is once its row is ours: one deleted (or brought up
        -- to date) since this statement's snapshot is left alone.
        WHERE smiths.id = ticket.live_id AND smiths.archived_at IS NULL
          AND {_outdated("smiths")}
        RETURNING smiths.*
    ), opener AS (
        SELECT ticket.lane, FALSE AS new_smith, patched.*
        FROM ticket JOIN patched ON patched.id = ticket.live_id
        UNION ALL
        -- As the snapshot has it, unless it was to be brought up to date and was not: it
        -- changed meanwhile (deleted, say), and the turn finds out itself.
        SELECT ticket.lane, FALSE, live.* FROM ticket JOIN smiths AS live ON live.id = ticket.live_id
        WHERE NOT EXISTS (SELECT 1 FROM patched WHERE patched.id = ticket.live_id)
          AND NOT {_outdated("live")}
        UNION ALL
        SELECT ticket.lane, TRUE, new_smith.*
        FROM ticket JOIN new_smith ON new_smith.id = ticket.new_smith_id OR (
            new_smith.agent_id = ticket.agent_id
            AND new_smith.external_id = ticket.m ->> 'smith_external_id'
        )
        WHERE ticket.thread_id IS NULL AND ticket.live_id IS NULL
    ), new_thread AS (
        INSERT INTO threads ({", ".join(_THREAD_NEW)})
        SELECT ticket.new_thread_id, opener.id, opener.agent_id,
               ticket.m ->> 'thread_external_id', ticket.m ->> 'source',
               '{ThreadState.OPEN.value}', '{Control.BOT.value}', NULL,
               {_object("ticket.m -> 'ref'")}, :at, :at
        FROM ticket JOIN opener ON opener.lane = ticket.lane
        ON CONFLICT (agent_id, external_id) DO NOTHING
        RETURNING threads.*
    ), turn AS (
        SELECT ticket.lane AS for_lane, FALSE AS started, FALSE AS new_smith,
               {_labelled("thread", threads, "thr__")}, {_labelled("owner", smiths, "own__")}
        FROM ticket
        JOIN threads AS thread ON thread.id = ticket.thread_id
        JOIN smiths AS owner ON owner.id = thread.smith_id
        UNION ALL
        SELECT ticket.lane, TRUE, opener.new_smith,
               {_labelled("new_thread", threads, "thr__")}, {_labelled("opener", smiths, "own__")}
        FROM ticket
        JOIN new_thread ON new_thread.id = ticket.new_thread_id
        JOIN opener ON opener.lane = ticket.lane
    ), prepared AS MATERIALIZED (
        SELECT turn.*, {_labelled("ver", agent_versions, "ver__")},
            CASE WHEN turn.own__auto_memory AND NOT turn.new_smith
                 THEN {_facts("turn.own__id")} END AS facts,
            CASE WHEN NOT turn.started THEN {_runs_of("turn.thr__id")} END AS runs,
            CASE WHEN NOT turn.started THEN {_said_in("turn.thr__id")} END AS said
        FROM turn
        JOIN agents ON agents.id = turn.own__agent_id
        LEFT JOIN agent_versions AS ver ON ver.agent_id = agents.id
         AND ver.version = coalesce(turn.own__pinned_version, agents.live_version)
    )
    {_LEASED_MESSAGES.format(
        more=", prepared.*",
        joined=" LEFT JOIN prepared ON prepared.for_lane = leased.claimed_lane",
    )}
    """
)
