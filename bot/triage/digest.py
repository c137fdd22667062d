"""A sweep's digest: what happened to each conversation, summed up as a table on a terminal,
JSON for scripts, or a short text posted through a connector that posts digests."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from bot.connector import Connector
from bot.domain import JSON, StopReason

log = logging.getLogger(__name__)

SLOWEST = 5


class Outcome(StrEnum):
    """What a sweep did with one conversation."""

    ANSWERED = "answered"
    ESCALATED = "escalated"
    CLOSED = "closed"
    SKIPPED = "skipped"
    FAILED = "failed"
    PENDING = "pending"  # still running when the sweep stopped waiting


OUTCOME_BY_STOP_REASON = {
    StopReason.END_TURN: Outcome.ANSWERED,
    StopReason.GUARDRAIL: Outcome.ANSWERED,
    StopReason.MAX_TOOL_LOOPS: Outcome.ANSWERED,
    StopReason.ESCALATED: Outcome.ESCALATED,
    StopReason.HANDOFF: Outcome.ESCALATED,
    StopReason.CLOSED: Outcome.CLOSED,
    StopReason.ERROR: Outcome.FAILED,
}
# When one conversation had several turns in a sweep, the last word wins in this order.
OUTCOME_RANK = {Outcome.ANSWERED: 0, Outcome.ESCALATED: 1, Outcome.CLOSED: 2}


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
            (
                f"  {_iso(self.started_at)} → {_iso(self.finished_at)}"
                f"  ({self.finished_at - self.started_at:.1f} s)"
                f"  channels: {', '.join(self.channels) or 'none'}"
            ),
            "",
            (
                f"  {'conversations':<14}{counts['conversations']:>6}"
                f"   ({counts['messages']} messages)"
            ),
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
        # A digest that cannot be posted is reported, and must not fail the sweep it sums up.
        except Exception as exc:  # noqa: BLE001
            log.warning("triage digest not posted to %s: %s", destination, exc)
            posted = False
    return posted


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _clip(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
