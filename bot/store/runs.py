"""The audit log and the turn around it: runs with their tool calls, a smith's memories, what
a turn reads before it runs, and the one transaction that commits a finished turn (run, tool
calls, outbox actions, thread state, memories, its inbox messages done)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from sqlalchemy import Float, Table, select
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import DBAPIError

from bot.domain import (
    Action,
    AgentVersion,
    InboundMessage,
    NotFound,
    Run,
    Smith,
    Thread,
    ThreadChange,
    ToolCallRecord,
    new_id,
    now,
)
from bot.store import folded
from bot.store import statements as st
from bot.store.database import OUTBOX_NOTICE, Database
from bot.store.errors import LeaseLost
from bot.store.identity import (
    Identity,
    SmithFields,
    check_owner,
    new_ticket_in,
    upsert_live_smith,
    upsert_smith,
    version_of,
)
from bot.store.inbox import Inbox, LaneClaim, release_lane_in
from bot.store.outbox import ActionClaim, pending_rows
from bot.store.rows import (
    run_values,
    to_agent_version,
    to_run,
    to_smith,
    to_thread,
    to_tool_call,
    tool_call_values,
)
from bot.store.schema import memories, runs, smiths, tool_calls

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TurnInputs:
    version: AgentVersion | None
    history: tuple[Run, ...]
    memories: tuple[str, ...]
    # What people wrote to the customer in the thread (time, author, text), oldest first.
    people_said: tuple[tuple[float, str, str], ...] = ()


# The memories a turn reads of its smith, oldest first.
MEMORY_LIMIT = 50


def _tool_calls(conn: Connection, run_ids: Sequence[str]) -> dict[str, tuple[ToolCallRecord, ...]]:
    """The tool calls of several runs in one query, by run id."""
    if not run_ids:
        return {}
    rows = conn.execute(
        select(tool_calls)
        .where(tool_calls.c.run_id.in_(list(run_ids)))
        .order_by(tool_calls.c.run_id, tool_calls.c.seq)
    ).mappings()
    found: dict[str, list[ToolCallRecord]] = {}
    for r in rows:
        found.setdefault(r["run_id"], []).append(to_tool_call(r))
    return {run_id: tuple(calls) for run_id, calls in found.items()}


def _thread_runs(conn: Connection, thread_id: str, limit: int) -> list[Run]:
    rows = list(conn.execute(st.THREAD_RUNS, {"thread_id": thread_id, "limit": limit}).mappings())
    rows.reverse()
    calls = _tool_calls(conn, [r["id"] for r in rows])
    return [to_run(r, calls.get(r["id"], ())) for r in rows]


def _memories(conn: Connection, smith_id: str, limit: int) -> list[str]:
    rows = conn.execute(st.MEMORIES, {"smith_id": smith_id, "limit": limit})
    return [r[0] for r in rows]


def _people_said(conn: Connection, thread_id: str, limit: int) -> list[tuple[float, str, str]]:
    """The latest ``limit`` messages people wrote in the thread, oldest first."""
    said = [
        (r[0], r[1], r[2])
        for r in conn.execute(st.PEOPLE_SAID, {"thread_id": thread_id, "limit": limit})
    ]
    said.reverse()
    return said


def _from_json(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """A row of ``table`` read as ``jsonb`` (``folded.HISTORY``), its float columns floats
    again (``jsonb`` writes a float with no fraction as an integer)."""
    for c in table.c:
        if isinstance(c.type, Float) and values.get(c.name) is not None:
            values[c.name] = float(values[c.name])
    return values


def _history(
    conn: Connection, smith_id: str, thread_id: str, history: int, with_facts: bool
) -> tuple[tuple[Run, ...], tuple[str, ...], tuple[tuple[float, str, str], ...]]:
    """A known ticket's runs, the smith's memories (unless not ``with_facts``) and what people
    wrote in the thread, as ``_thread_runs``, ``_memories`` and ``_people_said`` read them,
    in one PostgreSQL statement."""
    params = {
        "smith_id": smith_id, "thread_id": thread_id, "history": history,
        "with_facts": with_facts, "facts": MEMORY_LIMIT,
    }
    row = conn.execute(folded.HISTORY, params).mappings().one()
    return _history_of(row)


def _history_of(
    row: RowMapping,
) -> tuple[tuple[Run, ...], tuple[str, ...], tuple[tuple[float, str, str], ...]]:
    """The runs, memories and what people wrote as ``folded.HISTORY`` reads them (``runs``,
    ``facts``, ``said``; NULL: none)."""
    runs_ = tuple(
        to_run(_from_json(runs, run), tuple(to_tool_call(_from_json(tool_calls, c)) for c in calls))
        for run, calls in row["runs"] or ()
    )
    said = tuple((float(at), author, text) for at, author, text in row["said"] or ())
    return runs_, tuple(row["facts"] or ()), said


class _Unread(Enum):
    """A value not read yet (where None is a value read)."""

    UNREAD = 0


def _turn_inputs(
    conn: Connection,
    smith: Smith,
    thread_id: str,
    history: int,
    *,
    new_thread: bool = False,
    new_smith: bool = False,
    version: AgentVersion | None | _Unread = _Unread.UNREAD,
) -> TurnInputs:
    """What a turn reads before it runs: the agent version the smith runs (unless read
    already, ``version``), the thread's latest runs, what people wrote in it, and the smith's
    memories when it keeps them. A thread this transaction created has no runs and nothing
    people wrote yet; a smith it created has no memories yet. On PostgreSQL a known thread's
    are read in one statement (``_history``)."""
    if version is _Unread.UNREAD:
        version = version_of(conn, smith)
    with_facts = smith.auto_memory and not new_smith
    if not new_thread and conn.dialect.name == "postgresql":
        return TurnInputs(version, *_history(conn, smith.id, thread_id, history, with_facts))
    facts = _memories(conn, smith.id, MEMORY_LIMIT) if with_facts else []
    if new_thread:
        return TurnInputs(version, (), tuple(facts), ())
    runs_ = _thread_runs(conn, thread_id, history)
    said = _people_said(conn, thread_id, history)
    return TurnInputs(version, tuple(runs_), tuple(facts), tuple(said))


def _prefixed(row: RowMapping, prefix: str) -> dict[str, Any]:
    """The columns of ``row`` labelled ``prefix``, by their own names."""
    return {key[len(prefix):]: value for key, value in row.items() if key.startswith(prefix)}


@dataclass(frozen=True, slots=True)
class PreparedTurn:
    """What a turn on a lane reads, read with the lane's claim: the ticket's thread, the smith
    it belongs to and the turn's inputs. ``started``: the thread was created just now."""

    thread: Thread
    smith: Smith
    inputs: TurnInputs
    started: bool


def _thread_for_turn(
    conn: Connection, agent_id: str, external_id: str, history: int
) -> tuple[Thread, Smith, TurnInputs] | None:
    params = {"agent_id": agent_id, "external_id": external_id}
    row = conn.execute(st.THREAD_WITH_OWNER, params).mappings().first()
    if row is None:
        return None
    thread = to_thread(row)
    smith = to_smith({c.name: row[f"own__{c.name}"] for c in st.OWNER.c})
    return thread, smith, _turn_inputs(conn, smith, thread.id, history)


def _new_ticket(
    conn: Connection,
    message: InboundMessage,
    agent_id: str,
    fields: SmithFields,
    smith_id: str,
    version: AgentVersion | None,
) -> PreparedTurn | None:
    """``Runs.prepare_turn_in`` for a new ticket of a sender no live smith stands for, on
    PostgreSQL: smith and thread inserted in one statement (``new_ticket_in``); a new smith
    on a new thread has nothing more to read. None where ``prepare_turn_in`` gives None (the
    smith's insert raced, or the thread's: the ticket is then another smith's)."""
    started = new_ticket_in(conn, message, agent_id, fields, smith_id=smith_id)
    if started is None:
        return None
    thread, smith = started
    if thread is None:
        return None
    return PreparedTurn(thread, smith, TurnInputs(version, (), (), ()), started=True)


def _prepared_of(row: RowMapping) -> PreparedTurn | None:
    """What a lane's turn reads, from the first row of its claim (``folded.CLAIM_TURNS``)."""
    if row["thr__id"] is None:
        return None
    version = None if row["ver__version"] is None else to_agent_version(_prefixed(row, "ver__"))
    inputs = TurnInputs(version, *_history_of(row))
    thread, smith = to_thread(_prefixed(row, "thr__")), to_smith(_prefixed(row, "own__"))
    return PreparedTurn(thread, smith, inputs, started=row["started"])


class Runs:
    """Runs, tool calls and memories; a turn's reads and its commit."""

    def __init__(self, db: Database, identity: Identity, inbox: Inbox):
        self.db = db
        self.identity = identity
        self.inbox = inbox
        self._insert_memory = db.insert_ignore(memories, ["smith_id", "fact"])

    # -- a turn ----------------------------------------------------------------------------

    async def claim_turns(
        self, *, limit: int, lease_seconds: float, agent_ids: Mapping[str, str], history: int
    ) -> list[LaneClaim]:
        """``Inbox.claim_lanes`` with each claim's turn inputs read (or its ticket started) in
        the claim's transaction: a turn's claim and reads are one round trip. ``agent_ids``
        maps the agent slugs known to the caller to their ids; a lane of another agent is
        claimed without its inputs.

        On PostgreSQL the claim with its reads and writes is one statement
        (``folded.CLAIM_TURNS``); should it fail, the lanes are claimed in a transaction as on
        SQLite, where a lane whose reads fail is claimed without them."""
        if not self.db.is_sqlite:
            params = {
                "agent_ids": json.dumps(dict(agent_ids)), "history": history, "facts": MEMORY_LIMIT
            }
            try:
                return await self.inbox.claim_lanes_folded(
                    folded.CLAIM_TURNS, params, limit=limit, lease_seconds=lease_seconds,
                    prepared=_prepared_of,
                )
            except DBAPIError as exc:
                # The statement is atomic: nothing of it was kept.
                log.warning("claiming turns in one statement failed (%s); claiming them in a "
                            "transaction", exc.orig)

        def prepare(conn: Connection, claim: LaneClaim) -> PreparedTurn | None:
            first = claim.items[0].message
            agent_id = agent_ids.get(first.agent_slug or "")
            if agent_id is None:
                return None
            return self.prepare_turn_in(conn, first, agent_id, history)

        return await self.inbox.claim_lanes(
            limit=limit, lease_seconds=lease_seconds, prepare=prepare
        )

    async def start_thread(
        self,
        message: InboundMessage,
        agent_id: str,
        *,
        history: int,
    ) -> tuple[Thread, Smith, TurnInputs]:
        """A ticket seen for the first time, in one write transaction: its smith upserted
        (``ensure_smith`` with the message's profile), its thread created (``ensure_thread``)
        and what the turn reads. Raises ``PermissionError`` as ``ensure_thread`` does when the
        ticket turns out to belong to another smith."""
        def work(conn: Connection) -> tuple[Thread, Smith, TurnInputs] | None:
            return self.start_thread_in(conn, message, agent_id, history)

        for _ in range(3):
            started = await self.db.run_tx(work)
            if started is not None:
                check_owner(started[0], started[1], message.thread_external_id)
                return started
        raise RuntimeError(f"could not upsert smith {message.smith_external_id!r}")

    def start_thread_in(
        self, conn: Connection, message: InboundMessage, agent_id: str, history: int
    ) -> tuple[Thread, Smith, TurnInputs] | None:
        """``start_thread`` inside a write transaction; None when the smith's upsert raced
        another writer (try again). A thread owned by another smith comes back with empty
        inputs, for ``check_owner`` to refuse."""
        fields = SmithFields(message.display_name, None, message.profile or None, None)
        fresh_id = new_id("smt")
        smith = upsert_smith(conn, message.smith_external_id, agent_id, fields, smith_id=fresh_id)
        new_smith = smith is not None and smith.id == fresh_id
        return self._started(conn, message, smith, history, new_smith=new_smith)

    def _started(
        self,
        conn: Connection,
        message: InboundMessage,
        smith: Smith | None,
        history: int,
        *,
        new_smith: bool,
        version: AgentVersion | None | _Unread = _Unread.UNREAD,
    ) -> tuple[Thread, Smith, TurnInputs] | None:
        """The new ticket's thread added under ``smith`` (None: its upsert raced), and what
        the turn reads."""
        if smith is None:
            return None
        thread, created = self.identity.add_thread_in(
            conn, smith, message.thread_external_id, message.source, message.ref
        )
        if thread.smith_id != smith.id:
            return thread, smith, TurnInputs(None, (), ())
        return thread, smith, _turn_inputs(
            conn, smith, thread.id, history, new_thread=created, new_smith=new_smith,
            version=version,
        )

    def prepare_turn_in(
        self, conn: Connection, message: InboundMessage, agent_id: str, history: int
    ) -> PreparedTurn | None:
        """What ``thread_for_turn`` reads, or for a new ticket what ``start_thread`` writes
        and reads, inside the lane claim's transaction. None when the turn must find out
        itself (a raced upsert, a ticket of another smith, an agent gone: the turn path
        handles those). The ticket's thread, its smith, the sender's live smith and the agent
        version are read in one statement (``TICKET``)."""
        params = {
            "agent_id": agent_id,
            "external_id": message.thread_external_id,
            "smith_external_id": message.smith_external_id,
        }
        row = conn.execute(st.TICKET, params).mappings().first()
        if row is None:
            return None
        version = (
            None if row["ver__version"] is None else to_agent_version(_prefixed(row, "ver__"))
        )
        if row["thr__id"] is not None:
            thread, owner = to_thread(_prefixed(row, "thr__")), to_smith(_prefixed(row, "own__"))
            inputs = _turn_inputs(conn, owner, thread.id, history, version=version)
            return PreparedTurn(thread, owner, inputs, started=False)
        fields = SmithFields(message.display_name, None, message.profile or None, None)
        fresh_id = new_id("smt")
        live = None if row["live__id"] is None else _prefixed(row, "live__")
        if live is None and message.smith_external_id is not None and conn.dialect.name == (
            "postgresql"
        ):
            return _new_ticket(conn, message, agent_id, fields, fresh_id, version)
        if message.smith_external_id is None:
            smith = upsert_smith(conn, None, agent_id, fields, smith_id=fresh_id)
        else:
            smith = upsert_live_smith(
                conn, live, message.smith_external_id, agent_id, fields, smith_id=fresh_id
            )
        started = self._started(
            conn, message, smith, history, new_smith=live is None, version=version
        )
        if started is None or started[0].smith_id != started[1].id:
            return None
        return PreparedTurn(*started, started=True)

    async def thread_for_turn(
        self, agent_id: str, external_id: str, *, history: int
    ) -> tuple[Thread, Smith, TurnInputs] | None:
        """A known ticket's thread, the smith it belongs to (archived or not) and what a turn
        on it reads, in one read transaction; None for a new ticket."""
        return await self.db.run_read(
            lambda conn: _thread_for_turn(conn, agent_id, external_id, history)
        )

    async def commit_turn(
        self,
        claim: LaneClaim,
        run: Run,
        actions: Sequence[Action],
        *,
        thread_change: ThreadChange,
        new_memories: Sequence[str] = (),
        hand_over_lease: float | None = None,
    ) -> ActionClaim | None:
        """Record a finished turn in ONE transaction: run, tool calls, outbox actions, thread
        state, memories, and the claimed inbox messages marked done. Raises ``LeaseLost`` (and
        writes nothing) when another worker has taken the lane in the meantime.

        With ``hand_over_lease``, the turn's first action is written already leased for that
        long (its claim counted as a try, as ``claim_actions`` counts it) when nothing of its
        thread waits to be sent before it, and its claim is returned for this process's
        sender: no second transaction to claim it. A process that dies before sending leaves
        it to the next sender once the lease runs out, as for any claim."""
        at = now()
        if not self.db.is_sqlite:
            return await self._commit_turn_folded(
                claim, run, actions, thread_change, new_memories, hand_over_lease, at
            )

        def work(conn: Connection) -> ActionClaim | None:
            release_lane_in(conn, claim, at)
            conn.execute(st.INSERT_RUN, run_values(run))
            if run.tool_calls:
                conn.execute(st.INSERT_TOOL_CALL, tool_call_values(run))
            values: dict[str, Any] = {
                "of_thread": run.thread_id,
                "updated_at": at,
                "new_title": thread_change.title,
            }
            if thread_change.state is not None:
                values["state"] = thread_change.state.value
            if thread_change.control is not None:
                values["control"] = thread_change.control.value
            # The title (unless the thread has one) and the state in one statement, which
            # hands back the thread as the turn leaves it, and whether an earlier action of
            # it still waits (asked before this turn's actions are written).
            row = conn.execute(st.FINISH_THREAD, values).mappings().one()
            handed: tuple[Action, str] | None = None
            if actions:
                rows = pending_rows(actions, at)
                if hand_over_lease is not None and not row["action_waiting"]:
                    token = new_id("lse")
                    rows[0].update(
                        lease_token=token, lease_expires_at=at + hand_over_lease, attempts=1
                    )
                    handed = actions[0], token
                conn.execute(st.INSERT_ACTION, rows)
            for fact in new_memories:
                conn.execute(
                    self._insert_memory.values(smith_id=run.smith_id, fact=fact, created_at=at)
                )
            conn.execute(
                st.INBOX_DONE,
                {"ids": [item.id for item in claim.items], "run_id": run.id, "finished_at": at},
            )
            if len(actions) > (handed is not None):
                self.db.notify_in(conn, OUTBOX_NOTICE)
            if handed is None:
                return None
            return ActionClaim(replace(handed[0], attempt=0), to_thread(row), handed[1])

        return await self.db.run_tx(work)

    async def _commit_turn_folded(
        self,
        claim: LaneClaim,
        run: Run,
        actions: Sequence[Action],
        thread_change: ThreadChange,
        new_memories: Sequence[str],
        hand_over_lease: float | None,
        at: float,
    ) -> ActionClaim | None:
        """``commit_turn`` on PostgreSQL: one statement (``folded.COMMIT_TURN``), atomic on its
        own, so sent without a transaction around it."""
        token = new_id("lse")
        params: dict[str, Any] = {
            "lane": claim.lane,
            "token": claim.token,
            "at": at,
            "run": folded.rows_json([run_values(run)]),
            "calls": folded.rows_json(tool_call_values(run)),
            "thread_id": run.thread_id,
            "new_title": thread_change.title,
            "state": None if thread_change.state is None else thread_change.state.value,
            "control": None if thread_change.control is None else thread_change.control.value,
            "actions": folded.rows_json(pending_rows(actions, at)),
            "hand_over": hand_over_lease is not None and bool(actions),
            "handed_token": token,
            "handed_expires": at + (hand_over_lease or 0.0),
            "action_count": len(actions),
            "smith_id": run.smith_id,
            "facts": list(dict.fromkeys(new_memories)),
            "ids": [item.id for item in claim.items],
            "run_id": run.id,
            "notice": f"{OUTBOX_NOTICE}|{self.db.origin}",
        }
        row = await self.db.run_each(
            lambda conn: conn.execute(folded.COMMIT_TURN, params).mappings().first()
        )
        if row is None:
            raise LeaseLost(f"lease on {claim.lane} was lost")
        if not params["hand_over"] or row["action_waiting"]:
            return None
        return ActionClaim(replace(actions[0], attempt=0), to_thread(row), token)

    # -- runs ------------------------------------------------------------------------------

    async def thread_runs(self, thread_id: str, *, limit: int = 50) -> list[Run]:
        """The thread's latest runs, oldest first (the turn history)."""
        return await self.db.run_read(lambda conn: _thread_runs(conn, thread_id, limit))

    async def get_run(self, run_id: str) -> Run:
        def work(conn: Connection) -> Run:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                raise NotFound(f"no run {run_id!r}")
            return to_run(row, _tool_calls(conn, [run_id]).get(run_id, ()))

        return await self.db.run_read(work)

    async def list_runs(
        self,
        *,
        external_id_prefix: str | None = None,
        thread_id: str | None = None,
        smith_id: str | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Runs newest first, optionally for one segment of smiths (``anon:``, ``intercom:``)."""
        query = select(runs)
        if external_id_prefix:
            query = query.join(smiths, smiths.c.id == runs.c.smith_id).where(
                st.prefix(smiths.c.external_id, external_id_prefix)
            )
        if thread_id:
            query = query.where(runs.c.thread_id == thread_id)
        if smith_id:
            query = query.where(runs.c.smith_id == smith_id)
        query = query.order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)

        def work(conn: Connection) -> list[Run]:
            rows = list(conn.execute(query.with_only_columns(*runs.c)).mappings())
            calls = _tool_calls(conn, [r["id"] for r in rows])
            return [to_run(r, calls.get(r["id"], ())) for r in rows]

        return await self.db.run_read(work)

    async def run_summaries(self, run_ids: Sequence[str]) -> list[Run]:
        """Runs by id, without their tool calls (outcome, error and timings only)."""
        ids = list(dict.fromkeys(run_ids))

        def work(conn: Connection) -> list[Run]:
            found: list[Run] = []
            for start in range(0, len(ids), st.IN_CHUNK):
                rows = conn.execute(
                    select(runs).where(runs.c.id.in_(ids[start : start + st.IN_CHUNK]))
                ).mappings()
                found.extend(to_run(r, ()) for r in rows)
            return found

        return await self.db.run_read(work)

    # -- memory ----------------------------------------------------------------------------

    async def memories(self, smith_id: str, *, limit: int = 50) -> list[str]:
        return await self.db.run_read(lambda conn: _memories(conn, smith_id, limit))
