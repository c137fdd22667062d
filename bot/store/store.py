"""The daemon's durable state behind one facade, on SQLite and PostgreSQL alike.

The queries live in one module per aggregate: ``identity`` (agents, smiths, threads), ``runs``
(runs, tool calls, memories, a turn's reads and its commit), ``inbox`` (inbox and lanes),
``outbox`` (claims, leases, fencing), ``cursors`` and ``locks``; ``statements`` holds the hot
statements built once and ``rows`` the row mappers. Each transaction is one unit of work: a
plain function of a ``Connection`` handed to ``Database.run_tx`` (read-then-write) or
``Database.run_read``, so it costs one thread hop on SQLite rather than several per statement.
Claims are conditional updates, so two workers (or two replicas) never take the same lane or
action while its lease holds.

``Store`` composes the aggregates (``store.identity``, ``store.runs`` …) and, so callers keep
working, offers their methods under the names they always had: bound methods of the
aggregates, not wrappers.
"""

from __future__ import annotations

from bot.domain import NotFound, ThreadChange
from bot.pipeline.inbox import INBOX_BATCH, InboxWriter
from bot.store.console import ConsoleSignouts
from bot.store.cursors import Cursors
from bot.store.database import Database
from bot.store.deliveries import Deliveries
from bot.store.errors import LeaseLost
from bot.store.feedback import Feedbacks
from bot.store.identity import Identity
from bot.store.inbox import CONTEXT_ONLY, Inbox, InboxItem, InboxRow, LaneClaim, lane_key
from bot.store.locks import Locks
from bot.store.outbox import ActionClaim, ActionState, Outbox, OutboxEntry
from bot.store.runs import PreparedTurn, Runs, TurnInputs

# Names that lived here before the split, kept importable from here during the transition.
__all__ = [
    "CONTEXT_ONLY",
    "INBOX_BATCH",
    "ActionClaim",
    "ActionState",
    "InboxItem",
    "InboxRow",
    "LaneClaim",
    "LeaseLost",
    "NotFound",
    "OutboxEntry",
    "PreparedTurn",
    "Store",
    "ThreadChange",
    "TurnInputs",
    "lane_key",
]


class Store:
    """The daemon's durable state. One instance per process, shared by every room."""

    def __init__(self, db: Database):
        self.db = db
        self.identity = identity = Identity(db)
        self.inbox = inbox = Inbox(db)
        self.runs = runs = Runs(db, identity, inbox)
        self.outbox = outbox = Outbox(db)
        self.cursors = cursors = Cursors(db)
        self.locks = locks = Locks(db)
        self.feedback = Feedbacks(db)
        self.deliveries = Deliveries(db)
        self.console_signouts = ConsoleSignouts(db)
        # The group commit is the pipeline's; the store only writes a batch.
        self.inbox_writer = writer = InboxWriter(inbox)

        self.ensure_agent = identity.ensure_agent
        self.get_agent = identity.get_agent
        self.get_agent_by_id = identity.get_agent_by_id
        self.publish_agent = identity.publish_agent
        self.set_live_version = identity.set_live_version
        self.agent_versions = identity.agent_versions
        self.version_for = identity.version_for
        self.ensure_smith = identity.ensure_smith
        self.get_smith = identity.get_smith
        self.find_smith = identity.find_smith
        self.patch_smith = identity.patch_smith
        self.pin_smith = identity.pin_smith
        self.archive_smith = identity.archive_smith
        self.list_smiths = identity.list_smiths
        self.ensure_thread = identity.ensure_thread
        self.get_thread = identity.get_thread
        self.find_thread = identity.find_thread
        self.find_threads_by_external = identity.find_threads_by_external
        self.update_thread = identity.update_thread
        self.list_threads = identity.list_threads

        self.claim_turns = runs.claim_turns
        self.start_thread = runs.start_thread
        self.thread_for_turn = runs.thread_for_turn
        self.commit_turn = runs.commit_turn
        self.thread_runs = runs.thread_runs
        self.get_run = runs.get_run
        self.list_runs = runs.list_runs
        self.run_summaries = runs.run_summaries
        self.memories = runs.memories

        self.inbox_put = writer.put
        self.inbox_put_delivery = writer.put_delivery
        self.inbox_seen = inbox.inbox_seen
        self.claim_lanes = inbox.claim_lanes
        self.renew_lane = inbox.renew_lane
        self.release_lane = inbox.release_lane
        self.inbox_counts = inbox.inbox_counts
        self.inbox_items = inbox.inbox_items
        self.inbox_rows = inbox.inbox_rows

        self.claim_actions = outbox.claim_actions
        self.renew_action = outbox.renew_action
        self.action_attempted = outbox.action_attempted
        self.action_done = outbox.action_done
        self.action_failed = outbox.action_failed
        self.outbox_entries = outbox.outbox_entries
        self.outbox_counts = outbox.outbox_counts
        self.action_states = outbox.action_states

        self.get_cursor = cursors.get_cursor
        self.set_cursor = cursors.set_cursor
        self.claim_tick = locks.claim_tick
        self.exclusive = locks.exclusive
