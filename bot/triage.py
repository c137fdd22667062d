"""Batch triage: sweep conversations waiting for an answer through the same inbox as webhooks.

A sweep asks each enabled connector for its pending work (``Connector.fetch_pending``) and
submits every message to the inbox under the dedup key the webhook path uses, so a message a
webhook already delivered, or an earlier sweep already answered, is not answered again. The
turns run in the daemon's own dispatcher (there is no second implementation of a turn here);
the sweep waits until each message's inbox row is finished and the actions of its run are sent
or dead-lettered, then sums it all up in a ``Digest``: a table on a terminal, JSON for scripts,
a short text for a Slack channel.

``supportbot triage`` (``run_command``) runs one sweep (``--once``) or sweeps on the configured
schedule in the foreground; ``supportbot serve`` runs scheduled sweeps itself (see
``bot.scheduler``), and both go through ``Sweeper``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import time
from operator import methodcaller
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo


from bot.config import Settings, TriageSettings, parse_duration
from bot.connector import Connector
from bot.domain import (
    JSON,
    InboundMessage,
    InboxStatus,
    OutboxStatus,
    Run,
    StopReason,
)

if TYPE_CHECKING:
    from bot.app import Application, RunnerFactory
    from bot.store.store import ActionState, InboxRow

log = logging.getLogger(__name__)

ALREADY_HANDLED = "already handled (answered earlier or queued by a webhook)"
SLOWEST = 5
# Shortest time between two looks at the store while waiting, however often work finishes;
# a look costs in proportion to what is still open, so while much is, look less often.
LOOK_GAP_SECONDS = 0.05
LOOK_GAP_PER_OPEN_SECONDS = 0.001


class Outcome(StrEnum):
    """What a sweep did with one conversation."""

    ANSWERED = "answered"
    ESCALATED = "escalated"
    CLOSED = "closed"
    SKIPPED = "skipped"
    FAILED = "failed"
    PENDING = "pending"  # still running when the sweep stopped waiting


_BY_STOP_REASON = {
    StopReason.END_TURN: Outcome.ANSWERED,
    StopReason.GUARDRAIL: Outcome.ANSWERED,
    StopReason.MAX_TOOL_LOOPS: Outcome.ANSWERED,
    StopReason.ESCALATED: Outcome.ESCALATED,
    StopReason.HANDOFF: Outcome.ESCALATED,
    StopReason.CLOSED: Outcome.CLOSED,
    StopReason.ERROR: Outcome.FAILED,
}
# When one conversation had several turns in a sweep, the last word wins in this order.
_RANK = {Outcome.ANSWERED: 0, Outcome.ESCALATED: 1, Outcome.CLOSED: 2}


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


# -- the digest ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationResult:
    """One conversation of a sweep: its outcome, why (skip reason or error), its turns."""

    channel: str
    thread: str
    outcome: Outcome
    messages: int
    reason: str | None = None
    turn_seconds: float | None = None
    run_ids: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def to_json(self) -> JSON:
        return {
            "channel": self.channel,
            "thread": self.thread,
            "outcome": self.outcome.value,
            "messages": self.messages,
            "reason": self.reason,
            "turn_seconds": _round(self.turn_seconds),
            "runs": list(self.run_ids),
            "actions": list(self.actions),
        }


@dataclass(frozen=True, slots=True)
class Digest:
    """The summary of one sweep."""

    started_at: float
    finished_at: float
    dry_run: bool
    channels: tuple[str, ...]
    conversations: tuple[ConversationResult, ...]
    turn_seconds: tuple[float, ...] = ()
    fetch_errors: dict[str, str] = field(default_factory=dict)
    tick: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(c.outcome for c in self.conversations)
        counts = {"conversations": len(self.conversations)}
        counts["messages"] = sum(c.messages for c in self.conversations)
        counts.update({outcome.value: counted.get(outcome, 0) for outcome in Outcome})
        return counts

    def of(self, outcome: Outcome) -> list[ConversationResult]:
        return [c for c in self.conversations if c.outcome is outcome]

    @property
    def skipped_reasons(self) -> dict[str, int]:
        return dict(Counter(c.reason or "unknown" for c in self.of(Outcome.SKIPPED)).most_common())

    def percentile(self, q: float) -> float | None:
        """Turn time at quantile ``q`` (nearest rank) over every run of the sweep."""
        if not self.turn_seconds:
            return None
        ordered = sorted(self.turn_seconds)
        rank = max(1, math.ceil(q * len(ordered)))
        return ordered[rank - 1]

    def slowest(self, n: int = SLOWEST) -> list[ConversationResult]:
        timed = [c for c in self.conversations if c.turn_seconds is not None]
        return sorted(timed, key=lambda c: c.turn_seconds or 0.0, reverse=True)[:n]

    @property
    def ok(self) -> bool:
        return (
            not self.fetch_errors and not self.of(Outcome.FAILED) and not self.of(Outcome.PENDING)
        )

    def to_json(self) -> JSON:
        return {
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_seconds": _round(self.finished_at - self.started_at),
            "tick": self.tick,
            "dry_run": self.dry_run,
            "channels": list(self.channels),
            "counts": self.counts,
            "skipped": [
                {"channel": c.channel, "thread": c.thread, "reason": c.reason}
                for c in self.of(Outcome.SKIPPED)
            ],
            "skipped_reasons": self.skipped_reasons,
            "failed": [
                {"channel": c.channel, "thread": c.thread, "error": c.reason}
                for c in self.of(Outcome.FAILED)
            ],
            "pending": [
                {"channel": c.channel, "thread": c.thread, "reason": c.reason}
                for c in self.of(Outcome.PENDING)
            ],
            "turn_seconds": {
                "count": len(self.turn_seconds),
                "p50": _round(self.percentile(0.5)),
                "p95": _round(self.percentile(0.95)),
            },
            "slowest": [
                {
                    "channel": c.channel,
                    "thread": c.thread,
                    "seconds": _round(c.turn_seconds),
                    "outcome": c.outcome.value,
                }
                for c in self.slowest()
            ],
            "fetch_errors": dict(self.fetch_errors),
            "conversations": [c.to_json() for c in self.conversations],
        }

    def table(self) -> str:
        """The digest as a plain-text table for a terminal."""
        counts = self.counts
        title = "Triage digest" + (
            " (dry run: nothing customer-facing was sent)" if self.dry_run else ""
        )
        lines = [
            title,
            f"  {_iso(self.started_at)} → {_iso(self.finished_at)}"
            f"  ({self.finished_at - self.started_at:.1f} s)"
            f"  channels: {', '.join(self.channels) or 'none'}",
            "",
            f"  {'conversations':<14}{counts['conversations']:>6}"
            f"   ({counts['messages']} messages)",
        ]
        for outcome in Outcome:
            if outcome is Outcome.PENDING and not counts[outcome.value]:
                continue
            lines.append(f"  {outcome.value:<14}{counts[outcome.value]:>6}")
        p50, p95 = self.percentile(0.5), self.percentile(0.95)
        if p50 is not None and p95 is not None:
            lines.append(
                f"  {'turn time':<14}  p50 {p50:.2f} s   p95 {p95:.2f} s"
                f"   ({len(self.turn_seconds)} turns)"
            )
        if self.skipped_reasons:
            lines += ["", "Skipped"]
            lines += [f"  {n:>5}  {reason}" for reason, n in self.skipped_reasons.items()]
        for outcome, heading in ((Outcome.FAILED, "Failed"), (Outcome.PENDING, "Unfinished")):
            rows = self.of(outcome)
            if rows:
                lines += ["", heading]
                lines += [f"  {c.thread:<40}  {_clip(c.reason or '', 100)}" for c in rows]
        if self.fetch_errors:
            lines += ["", "Channels that could not list their pending work"]
            lines += [
                f"  {name:<12}  {_clip(error, 100)}" for name, error in self.fetch_errors.items()
            ]
        slowest = self.slowest()
        if slowest:
            lines += ["", "Slowest conversations"]
            lines += [
                f"  {c.turn_seconds or 0.0:>7.2f} s  {c.thread:<40}  {c.outcome.value}"
                for c in slowest
            ]
        return "\n".join(lines)

    def summary(self) -> str:
        """A few lines for a Slack channel or a log line."""
        counts = self.counts
        head = (
            "Triage sweep"
            + (" (dry run)" if self.dry_run else "")
            + f" — {counts['conversations']} conversations: "
        )
        head += ", ".join(
            f"{counts[o.value]} {o.value}"
            for o in Outcome
            if counts[o.value] or o in (Outcome.ANSWERED, Outcome.FAILED)
        )
        lines = [head]
        p50, p95 = self.percentile(0.5), self.percentile(0.95)
        if p50 is not None and p95 is not None:
            lines.append(f"Turn time p50 {p50:.2f} s, p95 {p95:.2f} s.")
        if self.skipped_reasons:
            lines.append(
                "Skipped: " + "; ".join(f"{n} × {r}" for r, n in self.skipped_reasons.items())
            )
        for c in self.of(Outcome.FAILED)[:10]:
            lines.append(f"Failed {c.thread}: {_clip(c.reason or '', 200)}")
        for name, error in self.fetch_errors.items():
            lines.append(f"{name} could not list pending work: {_clip(error, 200)}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a sweep is: conversations finished out of those it took."""

    finished: int
    total: int
    counts: dict[str, int]


ProgressCallback = Callable[[Progress], None]


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
    """Runs sweeps on a started ``Application`` (its connectors, inbox and dispatcher)."""

    def __init__(self, app: Application):
        self._app = app

    async def sweep(
        self,
        options: SweepOptions,
        *,
        progress: ProgressCallback | None = None,
        tick: str | None = None,
    ) -> Digest:
        """Fetch, submit, wait, and sum up. Never raises for one channel's or one
        conversation's failure: those are in the digest."""
        app = self._app
        if app.dispatcher is None:
            raise RuntimeError("a sweep needs the application's dispatcher and outbox running")
        started = time.time()
        connectors = dict(app.connectors)
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
        """One conversation's messages, one after the other (the inbox keeps their order),
        after those of the conversation that were found earlier (``after``)."""
        if after is not None:
            await after
        for message in messages:
            await self._submit(conversation, message)

    async def _submit(self, conversation: _Conversation, message: InboundMessage) -> None:
        key = (message.source, message.dedup_key)
        conversation.keys.append(key)
        try:
            new = await self._app.submit(message)
        except Exception as exc:
            log.exception("triage: could not submit %s", message.dedup_key)
            conversation.errors.append(f"not accepted: {type(exc).__name__}: {exc}")
            return
        if new:
            conversation.watched.append(key)
            return
        # Seen before: watch it only if it is still queued (a webhook got there first and its
        # turn has not run yet); otherwise it was answered (or skipped) before this sweep.
        rows = await self._app.store.inbox_rows([key])
        if rows and rows[0].status is InboxStatus.PENDING:
            conversation.watched.append(key)

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
            for loop in (self._app.dispatcher, self._app.outbox):
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
        store = self._app.store
        deadline = time.monotonic() + options.timeout_seconds
        turn_seconds: list[float] = []
        open_ = [c for c in conversations if not self._settle_trivially(c)]
        last_reported = -1
        while True:
            finished.clear()
            looked = time.monotonic()
            rows = await store.inbox_rows([k for c in open_ for k in c.watched])
            by_key = {(r.source, r.dedup_key): r for r in rows}
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
        outcome = max((_BY_STOP_REASON[run.stop_reason] for run in mine), key=_RANK.__getitem__)
        return ConversationResult(outcome=outcome, **base)
    reasons = [r.error for r in rows if r.status is InboxStatus.SKIPPED and r.error]
    return ConversationResult(
        outcome=Outcome.SKIPPED, reason=reasons[0] if reasons else ALREADY_HANDLED, **base
    )


# -- the digest in a channel -------------------------------------------------------------------


async def post_digest(
    connectors: Mapping[str, Connector], digest: Digest, destinations: Mapping[str, str]
) -> bool:
    """Post the digest's summary through each connector named in ``destinations`` (connector
    name → where on its channel); False (logged) when one could not be posted."""
    text = digest.summary()
    posted = True
    for name, destination in destinations.items():
        connector = connectors.get(name)
        if connector is None or not connector.posts_digest:
            log.warning(
                "triage digest not posted to %s: no enabled %s connector posts digests",
                destination,
                name,
            )
            posted = False
            continue
        try:
            await connector.post_digest(destination, text)
        except Exception as exc:
            log.warning("triage digest not posted to %s: %s", destination, exc)
            posted = False
    return posted


# -- scheduled sweeps (``serve``) ---------------------------------------------------------------


async def scheduled_sweep(app: Application, tick: str) -> Digest:
    """The body of a scheduled tick: one sweep with the ``[triage]`` settings, its digest
    logged and, when configured, posted to Slack."""
    settings = app.settings.triage
    digest = await Sweeper(app).sweep(SweepOptions.from_settings(settings), tick=tick)
    if settings.digest_destinations:
        await post_digest(app.connectors, digest, settings.digest_destinations)
    return digest


# -- the ``supportbot triage`` command ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TriageCommand:
    """The command line of ``supportbot triage``."""

    once: bool = False
    since: str | None = None
    limit: int | None = None
    concurrency: int | None = None
    channel: str | None = None
    dry_run: bool = False
    json_path: Path | None = None


def command_settings(settings: Settings, command: TriageCommand) -> Settings:
    """The settings ``supportbot triage`` runs the application with: its own concurrency, no
    connector polling on its own (the sweep does the listing), no schedule for ``--once``.
    (``--dry-run`` is the connectors' own: ``Connector.dry_run``.)"""
    concurrency = (
        command.concurrency or settings.triage.concurrency or settings.pipeline.concurrency
    )
    update: dict[str, Any] = {
        "pipeline": settings.pipeline.model_copy(update={"concurrency": concurrency}),
    }
    if command.once:
        update["triage"] = settings.triage.model_copy(
            update={"interval_seconds": None, "cron": None}
        )
    return settings.without_polling().model_copy(update=update)


def command_options(settings: Settings, command: TriageCommand) -> SweepOptions:
    base = SweepOptions.from_settings(settings.triage)
    since = base.since
    if command.since is not None:
        since = (
            parse_since(command.since, timezone=settings.triage.timezone) if command.since else None
        )
    return SweepOptions(
        since=since,
        limit=command.limit if command.limit is not None else base.limit,
        channels=(command.channel,) if command.channel else base.channels,
        dry_run=command.dry_run,
        timeout_seconds=base.timeout_seconds,
    )


class ProgressBar:
    """A one-line progress bar on a terminal; on anything else, a log line every 10 %."""

    WIDTH = 30

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._tty = stream.isatty()
        self._last_decile = -1
        self._started = time.monotonic()

    def __call__(self, progress: Progress) -> None:
        if not progress.total:
            return
        share = progress.finished / progress.total
        if self._tty:
            filled = int(share * self.WIDTH)
            tally = " ".join(f"{k} {v}" for k, v in sorted(progress.counts.items()))
            elapsed = time.monotonic() - self._started
            self._stream.write(
                f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{progress.finished}/{progress.total}  {elapsed:5.1f} s  {tally}\033[K"
            )
            if progress.finished == progress.total:
                self._stream.write("\n")
            self._stream.flush()
            return
        decile = int(share * 10)
        if decile != self._last_decile:
            self._last_decile = decile
            log.info("triage: %d/%d conversations finished", progress.finished, progress.total)


async def run_command(
    settings: Settings,
    command: TriageCommand,
    *,
    out: TextIO,
    err: TextIO,
    connectors: Sequence[Connector] | None = None,
    runner_factory: RunnerFactory | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """``supportbot triage``: 0 when every conversation was handled, 1 when some failed or a
    channel could not list its work, 2 for a usage or start-up error."""
    from bot.app import Application
    from bot.store.migrate import SchemaBehind

    run_settings = command_settings(settings, command)
    if not command.once and not run_settings.triage.scheduled:
        err.write(
            "supportbot: no [triage] schedule is configured (triage.interval_seconds or "
            "triage.cron); use --once for a single sweep\n"
        )
        return 2
    try:
        options = command_options(run_settings, command)
    except ValueError as exc:
        err.write(f"supportbot: {exc}\n")
        return 2
    app = Application(
        run_settings,
        serve_http=False,
        connectors=connectors,
        runner_factory=runner_factory,
        # Each connector's own override (``Connector.dry_run`` itself would skip those).
        connector_wrapper=methodcaller("dry_run") if command.dry_run else None,
    )
    try:
        await app.start()
    except SchemaBehind as exc:
        err.write(f"supportbot: {exc}\n")
        return 2
    try:
        if options.channels is not None:
            missing = [c for c in options.channels if c not in app.connectors]
            if missing:
                err.write(
                    f"supportbot: no enabled connector named {', '.join(missing)} "
                    f"(enabled: {', '.join(app.connectors) or 'none'})\n"
                )
                return 2
        if not command.once:
            return await _run_scheduled(app, stop, err)
        digest = await Sweeper(app).sweep(options, progress=ProgressBar(err))
        out.write(digest.table() + "\n")
        out.flush()
        if command.json_path is not None:
            await asyncio.to_thread(_write_json, command.json_path, digest.to_json())
        if run_settings.triage.digest_destinations:
            await post_digest(app.connectors, digest, run_settings.triage.digest_destinations)
    finally:
        await app.stop()
    return 0 if digest.ok else 1


async def _run_scheduled(app: Application, stop: asyncio.Event | None, err: TextIO) -> int:
    """Sweep on the configured schedule until SIGINT/SIGTERM (or ``stop``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError):
            pass  # not the main thread (tests), or no signals on this platform
    err.write("supportbot: sweeping on the [triage] schedule; Ctrl-C to stop\n")
    err.flush()
    try:
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    return 0


def _write_json(path: Path, data: JSON) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _clip(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
