"""The sweep: each enabled connector's pending work submitted through the same inbox as webhooks.

A sweep asks each enabled connector for its pending work (``Connector.fetch_pending``) and
submits every message to the inbox under the dedup key the webhook path uses, so a message a
webhook already delivered, or an earlier sweep already answered, is not answered again. The
turns run in the daemon's own dispatcher (there is no second implementation of a turn here);
the sweep waits until each message's inbox row is finished and the actions of its run are sent
or dead-lettered, then sums it all up in a ``Digest``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.config import TriageSettings, parse_duration
from bot.connector import Connector
from bot.domain import InboundMessage, InboxStatus, OutboxStatus, Run, StopReason
from bot.triage.digest import (
    OUTCOME_BY_STOP_REASON,
    OUTCOME_RANK,
    ConversationResult,
    Digest,
    Outcome,
    Progress,
    ProgressCallback,
    post_digest,
)

if TYPE_CHECKING:
    from bot.daemon import Daemon
    from bot.store.store import ActionState, InboxRow

log = logging.getLogger(__name__)

ALREADY_HANDLED = "already handled (answered earlier or queued by a webhook)"
# Shortest time between two looks at the store while waiting, however often work finishes;
# a look costs in proportion to what is still open, so while much is, look less often.
LOOK_GAP_SECONDS = 0.05
LOOK_GAP_PER_OPEN_SECONDS = 0.001


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepOptions:
    """What one sweep takes: conversations updated after ``since`` (unix seconds; None: all),
    at most ``limit`` of them, from ``channels`` (None: every connector)."""

    since: float | None = None
    limit: int | None = None
    channels: tuple[str, ...] | None = None
    dry_run: bool = False
    timeout_seconds: float = 3600.0
    poll_seconds: float = 0.25

    @classmethod
    def from_settings(cls, settings: TriageSettings, *, at: float | None = None) -> SweepOptions:
        at = time.time() if at is None else at
        window = parse_duration(settings.since) if settings.since else None
        return cls(
            since=at - window if window is not None else None,
            limit=settings.limit,
            channels=tuple(settings.channels) if settings.channels is not None else None,
            timeout_seconds=settings.timeout_seconds,
        )


def parse_since(text: str, *, at: float | None = None, timezone: str = "UTC") -> float:
    """``--since``: a duration back from now (``30m``, ``2h``, ``1d``) or an ISO 8601 time
    (without an offset it is read in ``timezone``). Raises ``ValueError`` otherwise."""
    at = time.time() if at is None else at
    window = parse_duration(text)
    if window is not None:
        return at - window
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a duration (30m, 2h, 1d) or an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.timestamp()


# -- the sweep ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Conversation:
    channel: str
    thread: str
    keys: list[tuple[str, str]] = field(default_factory=list)
    watched: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    result: ConversationResult | None = None


class Sweeper:
    """Runs sweeps on a started daemon (its connectors, inbox and dispatcher)."""

    def __init__(self, daemon: Daemon):
        self._daemon = daemon

    async def sweep(
        self,
        options: SweepOptions,
        *,
        progress: ProgressCallback | None = None,
        tick: str | None = None,
    ) -> Digest:
        """Fetch, submit, wait, and sum up. Never raises for one channel's or one
        conversation's failure: those are in the digest."""
        daemon = self._daemon
        if daemon.dispatcher is None:
            raise RuntimeError("a sweep needs the application's dispatcher and outbox running")
        started = time.time()
        connectors = dict(daemon.connectors)
        fetch_errors: dict[str, str] = {}
        if options.channels is not None:
            connectors = {n: c for n, c in connectors.items() if n in options.channels}
            for name in options.channels:
                if name not in connectors:
                    fetch_errors[name] = "no enabled connector by this name"
        conversations: dict[tuple[str, str], _Conversation] = {}
        for name, connector in connectors.items():
            remaining = None if options.limit is None else options.limit - len(conversations)
            if remaining is not None and remaining <= 0:
                break
            try:
                found = await self._take_pending(connector, options, conversations)
            except Exception as exc:
                log.exception("triage: %s could not list its pending work", name)
                fetch_errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            log.info("triage: %s has %d conversation(s) waiting", name, found)
        total = len(conversations)
        log.info("triage: %d conversation(s) submitted", total)
        turn_seconds = await self._wait(list(conversations.values()), options, progress)
        digest = Digest(
            started_at=started,
            finished_at=time.time(),
            dry_run=options.dry_run,
            channels=tuple(connectors),
            conversations=tuple(c.result for c in conversations.values() if c.result is not None),
            turn_seconds=tuple(turn_seconds),
            fetch_errors=fetch_errors,
            tick=tick,
        )
        log.info("triage: %s", digest.summary().replace("\n", " "))
        return digest

    async def _take_pending(
        self,
        connector: Connector,
        options: SweepOptions,
        conversations: dict[tuple[str, str], _Conversation],
    ) -> int:
        """Submit ``connector``'s pending conversations (up to the sweep's limit) into
        ``conversations``; return how many it found. Each one is submitted as soon as the
        connector finds it, so the first turns run while the rest is still being listed, and
        submissions that overlap share the inbox's group commits. What was submitted before a
        listing failed stays submitted (and is waited for)."""
        remaining = None if options.limit is None else options.limit - len(conversations)
        submitting: dict[tuple[str, str], asyncio.Task[None]] = {}
        found = 0
        try:
            async for messages in connector.fetch_pending(since=options.since, limit=remaining):
                for key, batch in _by_conversation(messages).items():
                    if key not in conversations:
                        if options.limit is not None and len(conversations) >= options.limit:
                            continue
                        conversations[key] = _Conversation(*key)
                        found += 1
                    submitting[key] = asyncio.create_task(
                        self._submit_in_order(conversations[key], batch, after=submitting.get(key)),
                        name=f"triage:submit:{key[1]}",
                    )
        finally:
            # Submissions never raise (a refusal is recorded on the conversation); they are
            # cancelled only when the sweep itself is.
            await asyncio.gather(*submitting.values())
        return found

    async def _submit_in_order(
        self,
        conversation: _Conversation,
        messages: list[InboundMessage],
        *,
        after: asyncio.Task[None] | None = None,
    ) -> None:
        """One conversation's messages as one delivery (the inbox stores them together, so one
        turn answers them), after those of the conversation that were found earlier
        (``after``)."""
        if after is not None:
            await after
        keys = [(message.source, message.dedup_key) for message in messages]
        conversation.keys.extend(keys)
        try:
            news = await self._daemon.submit_delivery(messages)
        except Exception as exc:
            log.exception("triage: could not submit %s", ", ".join(m.dedup_key for m in messages))
            conversation.errors.append(f"not accepted: {type(exc).__name__}: {exc}")
            return
        conversation.watched.extend(key for key, new in zip(keys, news) if new)
        seen = [key for key, new in zip(keys, news) if not new]
        if not seen:
            return
        # Seen before: watch those still queued (a webhook got there first and its turn has
        # not run yet); the others were answered (or skipped) before this sweep.
        rows = await self._daemon.store.inbox_rows(seen)
        conversation.watched.extend(
            (row.source, row.dedup_key) for row in rows if row.status is InboxStatus.PENDING
        )

    async def _wait(
        self,
        conversations: list[_Conversation],
        options: SweepOptions,
        progress: ProgressCallback | None,
    ) -> list[float]:
        """Look at the store until every conversation's messages are finished and the actions
        of their runs are sent or dead; return every run's turn time.

        This process's dispatcher and outbox say when a turn or an action finishes, so the
        sweep ends as soon as its last action is sent; what other replicas do is seen at the
        next poll."""
        finished = asyncio.Event()
        with ExitStack() as listening:
            for loop in (self._daemon.dispatcher, self._daemon.outbox):
                if loop is not None:
                    listening.enter_context(loop.notifying(finished.set))
            return await self._watch(conversations, options, progress, finished)

    async def _watch(
        self,
        conversations: list[_Conversation],
        options: SweepOptions,
        progress: ProgressCallback | None,
        finished: asyncio.Event,
    ) -> list[float]:
        store = self._daemon.store
        deadline = time.monotonic() + options.timeout_seconds
        turn_seconds: list[float] = []
        open_ = [c for c in conversations if not self._settle_trivially(c)]
        last_reported = -1
        # Inbox rows that left ``pending`` (done, failed, skipped) stay as they are: each look
        # reads only the rows still pending, and the actions of the runs still open.
        settled: dict[tuple[str, str], InboxRow] = {}
        while True:
            finished.clear()
            looked = time.monotonic()
            keys = [k for c in open_ for k in c.watched]
            pending = [k for k in keys if k not in settled]
            fresh = await store.inbox_rows(pending) if pending else []
            for row in fresh:
                if row.status is not InboxStatus.PENDING:
                    settled[(row.source, row.dedup_key)] = row
            by_key = {(r.source, r.dedup_key): r for r in fresh}
            by_key.update((k, settled[k]) for k in keys if k in settled)
            rows = list(by_key.values())
            run_ids = sorted({r.run_id for r in rows if r.run_id})
            actions = await store.action_states(run_ids) if run_ids else []
            actions_by_run: dict[str, list[ActionState]] = {}
            for entry in actions:
                actions_by_run.setdefault(entry.run_id, []).append(entry)
            timed_out = time.monotonic() >= deadline
            finishing: list[tuple[_Conversation, list[InboxRow]]] = []
            still_open: list[_Conversation] = []
            for conversation in open_:
                mine = [by_key[k] for k in conversation.watched if k in by_key]
                busy = any(r.status is InboxStatus.PENDING for r in mine) or any(
                    e.status is OutboxStatus.PENDING
                    for r in mine
                    if r.run_id
                    for e in actions_by_run.get(r.run_id, ())
                )
                if busy and not timed_out:
                    still_open.append(conversation)
                else:
                    finishing.append((conversation, mine))
            if finishing:
                finished_runs = sorted(
                    {r.run_id for _, mine in finishing for r in mine if r.run_id}
                )
                runs = {run.id: run for run in await store.run_summaries(finished_runs)}
                for conversation, mine in finishing:
                    conversation.result = _result(conversation, mine, runs, actions_by_run)
                    turn_seconds.extend(
                        runs[run_id].finished_at - runs[run_id].started_at
                        for run_id in conversation.result.run_ids
                        if run_id in runs
                    )
            open_ = still_open
            done = len(conversations) - len(open_)
            if progress is not None and done != last_reported:
                last_reported = done
                counts = Counter(c.result.outcome.value for c in conversations if c.result)
                progress(Progress(done, len(conversations), dict(counts)))
            if not open_:
                return turn_seconds
            try:
                await asyncio.wait_for(finished.wait(), timeout=options.poll_seconds)
            except TimeoutError:
                continue
            # Work finishes in bursts (16 turns at a time): let more of it finish before
            # looking again.
            gap = min(
                options.poll_seconds,
                max(LOOK_GAP_SECONDS, LOOK_GAP_PER_OPEN_SECONDS * len(open_)),
            )
            await asyncio.sleep(max(0.0, looked + gap - time.monotonic()))

    @staticmethod
    def _settle_trivially(conversation: _Conversation) -> bool:
        """Conversations with nothing to wait for get their result at once."""
        if conversation.watched:
            return False
        if conversation.errors:
            conversation.result = ConversationResult(
                conversation.channel,
                conversation.thread,
                Outcome.FAILED,
                len(conversation.keys),
                reason="; ".join(conversation.errors),
            )
        else:
            conversation.result = ConversationResult(
                conversation.channel,
                conversation.thread,
                Outcome.SKIPPED,
                len(conversation.keys),
                reason=ALREADY_HANDLED,
            )
        return True


def _by_conversation(
    messages: Iterable[InboundMessage],
) -> dict[tuple[str, str], list[InboundMessage]]:
    """Messages by conversation, each conversation's in their order: they are submitted back
    to back, so the dispatcher can answer them in one turn."""
    order: dict[tuple[str, str], list[InboundMessage]] = {}
    for message in messages:
        order.setdefault((message.source, message.thread_external_id), []).append(message)
    return order


def _result(
    conversation: _Conversation,
    rows: list[InboxRow],
    runs: dict[str, Run],
    actions_by_run: dict[str, list[ActionState]],
) -> ConversationResult:
    run_ids = tuple(dict.fromkeys(r.run_id for r in rows if r.run_id))
    mine = [runs[i] for i in run_ids if i in runs]
    entries = [e for i in run_ids for e in actions_by_run.get(i, ())]
    turn = sum(run.finished_at - run.started_at for run in mine) if mine else None
    base: dict[str, Any] = {
        "channel": conversation.channel,
        "thread": conversation.thread,
        "messages": len(conversation.keys),
        "turn_seconds": turn,
        "run_ids": run_ids,
        "actions": tuple(f"{e.kind.value}:{e.status.value}" for e in entries),
    }
    waiting = [r for r in rows if r.status is InboxStatus.PENDING]
    unsent = [e for e in entries if e.status is OutboxStatus.PENDING]
    if waiting or unsent:
        what = "turn not run yet" if waiting else f"{len(unsent)} action(s) not sent yet"
        return ConversationResult(outcome=Outcome.PENDING, reason=what, **base)
    errors = list(conversation.errors)
    errors += [r.error or "failed" for r in rows if r.status is InboxStatus.FAILED]
    errors += [
        run.error or "the turn ended in an error"
        for run in mine
        if run.stop_reason is StopReason.ERROR
    ]
    errors += [
        f"{e.kind.value} not delivered: {e.last_error or 'dead-lettered'}"
        for e in entries
        if e.status is OutboxStatus.DEAD
    ]
    if errors:
        return ConversationResult(outcome=Outcome.FAILED, reason="; ".join(errors), **base)
    if mine:
        outcome = max(
            (OUTCOME_BY_STOP_REASON[run.stop_reason] for run in mine), key=OUTCOME_RANK.__getitem__
        )
        return ConversationResult(outcome=outcome, **base)
    reasons = [r.error for r in rows if r.status is InboxStatus.SKIPPED and r.error]
    return ConversationResult(
        outcome=Outcome.SKIPPED, reason=reasons[0] if reasons else ALREADY_HANDLED, **base
    )


# -- scheduled sweeps (``serve``) ---------------------------------------------------------------


async def scheduled_sweep(daemon: Daemon, tick: str) -> Digest:
    """The body of a scheduled tick: one sweep with the ``[triage]`` settings, its digest
    logged and, when configured, posted to Slack."""
    settings = daemon.settings.triage
    digest = await Sweeper(daemon).sweep(SweepOptions.from_settings(settings), tick=tick)
    if settings.digest_destinations:
        await post_digest(daemon.connectors, digest, settings.digest_destinations)
    return digest
