"""The statements on a turn's hot path, built once with their parameters bound per call.

Building a select and deriving its cache key costs more than SQLite takes to run it (a
three-statement unit: 0.9 ms built per call, 0.4 ms built once). Statements that differ by
dialect (insert-or-ignore) are built once per ``Database`` by the aggregate that uses them,
through ``Database.insert_ignore``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement, Insert
from sqlalchemy.sql.elements import Label

from bot.domain import InboxStatus, OutboxStatus
from bot.store.schema import (
    agent_versions,
    agents,
    inbox,
    inbox_live,
    lanes,
    memories,
    outbox,
    outbox_live,
    person_messages,
    runs,
    smiths,
    threads,
    tool_calls,
)

# Live states as SQL literals, not bound values: only then can either database prove a query
# fits a partial index on them (a bound value might be anything).
PENDING: ColumnElement[str] = literal_column(f"'{InboxStatus.PENDING.value}'")
assert InboxStatus.PENDING.value == OutboxStatus.PENDING.value

# SQLite takes at most 32766 bound parameters per statement (999 before 3.32); stay well under.
IN_CHUNK = 500


def prefix(column: Any, prefix: str) -> Any:
    """``column LIKE 'prefix%'`` with the user's ``%`` and ``_`` taken literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return and_(column.is_not(None), column.like(escaped + "%", escape="\\"))


# -- identity ------------------------------------------------------------------------------------

OWNER = smiths.alias("owner")
THREAD_WITH_OWNER = (
    select(threads, *[c.label(f"own__{c.name}") for c in OWNER.c])
    .join(OWNER, OWNER.c.id == threads.c.smith_id)
    .where(
        threads.c.agent_id == bindparam("agent_id"),
        threads.c.external_id == bindparam("external_id"),
    )
)
LIVE_SMITH = select(smiths).where(
    smiths.c.agent_id == bindparam("agent_id"),
    smiths.c.external_id == bindparam("external_id"),
    smiths.c.archived_at.is_(None),
)
SMITH_BY_ID = select(smiths).where(smiths.c.id == bindparam("smith_id"))
THREAD_OF_TICKET = select(threads).where(
    threads.c.agent_id == bindparam("agent_id"), threads.c.external_id == bindparam("external_id")
)
# The version a smith runs: its pin (``pinned``), else the agent's live version; no row when
# neither is set. One statement where reading the live version first made two.
SMITH_VERSION = select(agent_versions).where(
    agent_versions.c.agent_id == bindparam("agent_id"),
    agent_versions.c.version
    == func.coalesce(
        bindparam("pinned", type_=Integer),
        select(agents.c.live_version)
        .where(agents.c.id == bindparam("agent_id"))
        .scalar_subquery(),
    ),
)
INSERT_SMITH = insert(smiths).returning(*smiths.c)

# What a turn's claim reads of its ticket in one statement, one row for the agent (none when
# the agent is gone): the ticket's thread and the smith owning it (``thr__``, ``own__``; NULL
# for a new ticket), the live smith of the message's sender (``live__``, what a new ticket
# is opened under) and the agent version the turn runs (``ver__``: the pin of whichever smith
# that is, else the live version; NULL when neither is set). Four statements before: the
# thread, the live smith, and the version read after either.
LIVE = smiths.alias("live")
TICKET_VERSION = agent_versions.alias("ver")
TICKET = (
    select(
        agents.c.id,
        *[c.label(f"thr__{c.name}") for c in threads.c],
        *[c.label(f"own__{c.name}") for c in OWNER.c],
        *[c.label(f"live__{c.name}") for c in LIVE.c],
        *[c.label(f"ver__{c.name}") for c in TICKET_VERSION.c],
    )
    .select_from(agents)
    .outerjoin(
        threads,
        and_(
            threads.c.agent_id == agents.c.id,
            threads.c.external_id == bindparam("external_id"),
        ),
    )
    .outerjoin(OWNER, OWNER.c.id == threads.c.smith_id)
    .outerjoin(
        LIVE,
        and_(
            LIVE.c.agent_id == agents.c.id,
            LIVE.c.external_id == bindparam("smith_external_id"),
            LIVE.c.archived_at.is_(None),
        ),
    )
    .outerjoin(
        TICKET_VERSION,
        and_(
            TICKET_VERSION.c.agent_id == agents.c.id,
            TICKET_VERSION.c.version
            == func.coalesce(
                case(
                    (threads.c.id.is_(None), LIVE.c.pinned_version),
                    else_=OWNER.c.pinned_version,
                ),
                agents.c.live_version,
            ),
        ),
    )
    .where(agents.c.id == bindparam("agent_id"))
)


# A live smith, inserted unless one of its agent and external id lives already (no row back
# then), by dialect name: one statement where a savepoint, the insert, its release and a read
# back were four.
_LIVE_SMITH_KEY: dict[str, Any] = {
    "index_elements": [smiths.c.agent_id, smiths.c.external_id],
    # The unique index's own predicate (``uq_smiths_live_external_id``), as the index has it.
    "index_where": and_(smiths.c.archived_at.is_(None), smiths.c.external_id.is_not(None)),
}
NEW_LIVE_SMITH: dict[str, Insert] = {
    "sqlite": sqlite.insert(smiths)
    .on_conflict_do_nothing(**_LIVE_SMITH_KEY)
    .returning(*smiths.c),
    "postgresql": postgresql.insert(smiths)
    .on_conflict_do_nothing(**_LIVE_SMITH_KEY)
    .returning(*smiths.c),
}
# A new ticket of a sender with no live smith, on PostgreSQL: its smith inserted (unless one
# lives by now, as ``NEW_LIVE_SMITH``) and its thread under it (unless the ticket's thread
# exists by now), one statement where they were two. One row when the smith was inserted,
# with the thread's columns (``thr__``) NULL when the thread was not. A turn's claim does this
# itself (``folded.CLAIM_TURNS``); this serves its transaction should that statement fail.
_SMITH_COLUMNS = ("id", "agent_id", "external_id", "display_name", "customer_id", "metadata",
                  "auto_memory", "created_at", "updated_at")
_NEW_SMITH = (
    postgresql.insert(smiths)
    .values({name: bindparam(name, type_=smiths.c[name].type) for name in _SMITH_COLUMNS})
    .on_conflict_do_nothing(**_LIVE_SMITH_KEY)
    .returning(*smiths.c)
    .cte("new_smith")
)
_THREAD_COLUMNS = ("id", "smith_id", "agent_id", "external_id", "channel", "state", "control",
                   "title", "metadata", "created_at", "updated_at")
_NEW_THREAD = (
    postgresql.insert(threads)
    .from_select(
        list(_THREAD_COLUMNS),
        select(
            *[
                _NEW_SMITH.c.id if name == "smith_id"
                else _NEW_SMITH.c.agent_id if name == "agent_id"
                else bindparam(f"thr_{name}", type_=threads.c[name].type)
                for name in _THREAD_COLUMNS
            ]
        ).select_from(_NEW_SMITH),
    )
    .on_conflict_do_nothing(index_elements=[threads.c.agent_id, threads.c.external_id])
    .returning(*threads.c)
    .cte("new_thread")
)
NEW_TICKET = select(
    *_NEW_SMITH.c, *[c.label(f"thr__{c.name}") for c in _NEW_THREAD.c]
).select_from(_NEW_SMITH.outerjoin(_NEW_THREAD, literal_column("true")))

# The SET clause comes from the parameters given (``state``, ``control`` when they change).
UPDATE_THREAD = update(threads).where(threads.c.id == bindparam("of_thread"))
# A finished turn's update of its thread: the parameters' columns, a title unless it has one,
# and the thread as it stands afterwards (what the turn's first action is sent with) with
# whether an action of the thread still waits to be sent (a turn's first action is handed
# straight to a sender only when none does; run before the turn's actions are written).
# Spelled out: SQLite renders RETURNING columns unqualified, so a subquery built from the
# tables would compare the outbox's own columns.
THREAD_ACTION_WAITING: Label[bool] = literal_column(
    "EXISTS (SELECT 1 FROM outbox_live AS waiting WHERE waiting.thread_id = threads.id)"
).label("action_waiting")
FINISH_THREAD = UPDATE_THREAD.values(
    title=func.coalesce(threads.c.title, bindparam("new_title"))
).returning(*threads.c, THREAD_ACTION_WAITING)

# -- runs ----------------------------------------------------------------------------------------

THREAD_RUNS = (
    select(runs)
    .where(runs.c.thread_id == bindparam("thread_id"))
    .order_by(runs.c.started_at.desc(), runs.c.id.desc())
    .limit(bindparam("limit"))
)
MEMORIES = (
    select(memories.c.fact)
    .where(memories.c.smith_id == bindparam("smith_id"))
    .order_by(memories.c.id)
    .limit(bindparam("limit"))
)
PEOPLE_SAID = (
    select(person_messages.c.created_at, person_messages.c.author_name, person_messages.c.text)
    .where(person_messages.c.thread_id == bindparam("thread_id"))
    .order_by(person_messages.c.created_at.desc(), person_messages.c.id.desc())
    .limit(bindparam("limit"))
)
INSERT_RUN = insert(runs)
INSERT_TOOL_CALL = insert(tool_calls)

# -- inbox and lanes -----------------------------------------------------------------------------

INBOX_DONE = (
    update(inbox)
    .where(inbox.c.id.in_(bindparam("ids", expanding=True)))
    .values(status=InboxStatus.DONE.value)
)
INBOX_CONTEXT_ONLY = (
    update(inbox)
    .where(inbox.c.id.in_(bindparam("ids", expanding=True)))
    .values(status=InboxStatus.SKIPPED.value)
)
LANE_FREE = or_(lanes.c.lease_expires_at.is_(None), lanes.c.lease_expires_at < bindparam("at"))
# Driven from the live work (``inbox_live``: the pending messages alone, without the dead
# entries done ones leave in an index of the inbox until a vacuum), so its cost follows the
# live work, not the number of lanes or of messages ever stored or lately finished.
CLAIMABLE_LANES = (
    select(lanes.c.key, lanes.c.lease_expires_at)
    .where(lanes.c.key.in_(select(inbox_live.c.lane)), LANE_FREE)
    .order_by(lanes.c.touched_at, lanes.c.key)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
# The lanes a claim found, leased together under one token (a lease is a lane's key and its
# token, so each lane's lease is still its own); the lanes leased come back.
LEASE_LANES = (
    update(lanes)
    .where(lanes.c.key.in_(bindparam("lanes", expanding=True)), LANE_FREE)
    .values(lease_token=bindparam("token"), lease_expires_at=bindparam("expires"))
    .returning(lanes.c.key)
)
PENDING_OF_LANES = (
    select(inbox)
    .where(
        # No status condition: a row of ``inbox_live`` is pending (its triggers keep it so in
        # the same transaction), and one would let the planner read the inbox's own partial
        # index, dead entries and all, instead.
        inbox.c.id.in_(
            select(inbox_live.c.id).where(
                inbox_live.c.lane.in_(bindparam("lanes", expanding=True))
            )
        ),
    )
    .order_by(inbox.c.id)
)
RELEASE_LANE = update(lanes).where(
    lanes.c.key == bindparam("lane"), lanes.c.lease_token == bindparam("token")
)

# -- outbox --------------------------------------------------------------------------------------

INSERT_ACTION = insert(outbox)
ACTION_FREE = or_(outbox.c.lease_expires_at.is_(None), outbox.c.lease_expires_at < bindparam("at"))


# Driven from ``outbox_live`` (the pending actions alone), like the lane claim; as a set the
# action is looked up in (not a join, which SQLite's planner drives from the outbox instead).
_EARLIER = outbox_live.alias("earlier")
DUE_ACTIONS = (
    select(outbox.c.seq)
    .where(
        # Pending by being in ``outbox_live`` (see ``PENDING_OF_LANES``).
        outbox.c.seq.in_(select(outbox_live.c.seq)),
        outbox.c.next_attempt_at <= bindparam("at"),
        ACTION_FREE,
        # No earlier action of its thread on the same channel still pending (an
        # announcement to a webhook that is down does not hold up the customer's replies).
        ~select(_EARLIER.c.seq)
        .where(
            _EARLIER.c.thread_id == outbox.c.thread_id,
            _EARLIER.c.channel == outbox.c.channel,
            _EARLIER.c.seq < outbox.c.seq,
        )
        .exists(),
    )
    .order_by(outbox.c.seq)
    .limit(bindparam("limit"))
)
LEASE_ACTION = (
    update(outbox)
    .where(
        outbox.c.seq == bindparam("claimed_seq"),
        outbox.c.status == PENDING,
        ACTION_FREE,
    )
    .values(
        lease_token=bindparam("token"),
        lease_expires_at=bindparam("expires"),
        attempts=outbox.c.attempts + 1,
        updated_at=bindparam("at"),
    )
)
RENEW_ACTION = (
    update(outbox)
    .where(
        outbox.c.id == bindparam("action"),
        outbox.c.lease_token == bindparam("token"),
        outbox.c.status == OutboxStatus.PENDING.value,
    )
    .values(lease_expires_at=bindparam("expires"))
)
ACTION_WITH_THREAD = (
    select(outbox, *[c.label(f"thr__{c.name}") for c in threads.c])
    .join(threads, threads.c.id == outbox.c.thread_id)
    .where(outbox.c.seq == bindparam("claimed_seq"))
)
CLAIM_DUE_ACTIONS = DUE_ACTIONS.with_for_update(skip_locked=True)
# Up to ``limit`` due actions (``DUE_ACTIONS``) leased under one token, each counted as a try,
# and read with the thread each acts on (``thr__``), in the order they were decided: on
# PostgreSQL one statement where a transaction of ``CLAIM_DUE_ACTIONS``, then
# ``LEASE_ACTION`` and ``ACTION_WITH_THREAD`` per action, took two exchanges per action and
# three more. An action's lease is its id and the token, so each is still its own.
_DUE = CLAIM_DUE_ACTIONS.cte("due")
_LEASED = (
    update(outbox)
    .where(outbox.c.seq == _DUE.c.seq, outbox.c.status == PENDING, ACTION_FREE)
    .values(
        lease_token=bindparam("token"),
        lease_expires_at=bindparam("expires"),
        attempts=outbox.c.attempts + 1,
        updated_at=bindparam("at"),
    )
    .returning(*outbox.c)
    .cte("leased")
)
CLAIM_ACTIONS = (
    select(_LEASED, *[c.label(f"thr__{c.name}") for c in threads.c])
    .join(threads, threads.c.id == _LEASED.c.thread_id)
    .order_by(_LEASED.c.seq)
)
# The claim's action, still pending and still leased to the claim (``outbox._held_by``).
HELD_ACTION = and_(
    outbox.c.id == bindparam("action"),
    outbox.c.lease_token == bindparam("token"),
    outbox.c.status == OutboxStatus.PENDING.value,
)
ACTION_DONE = (
    update(outbox)
    .where(HELD_ACTION)
    .values(
        status=OutboxStatus.DONE.value,
        remote_id=bindparam("remote_id"),
        lease_token=None,
        lease_expires_at=None,
        updated_at=bindparam("at"),
    )
)
