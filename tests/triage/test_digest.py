"""The pieces of a sweep that need no database: --since, percentiles, the progress bar."""

from __future__ import annotations

import dataclasses
import io
import logging
from datetime import UTC, datetime

import pytest

from bot.connector import DryRunConnector
from bot.domain import Attachment, InboundMessage, Smith, Thread
from bot.triage import (
    ConversationResult,
    Digest,
    Outcome,
    Progress,
    ProgressBar,
    parse_since,
    post_digest,
)
from tests.triage.fakes import Desk

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds_back"),
    [("30m", 1800), ("2h", 7200), ("1d", 86_400), ("1h30m", 5400), ("45s", 45), ("1w", 604_800)],
)
def test_since_accepts_durations(text: str, seconds_back: float) -> None:
    assert parse_since(text, at=NOW) == NOW - seconds_back


def test_since_accepts_iso_8601_with_or_without_an_offset() -> None:
    assert parse_since("2026-03-01T10:00:00Z", at=NOW) == NOW - 7200
    assert parse_since("2026-03-01T11:00:00+01:00", at=NOW) == NOW - 7200
    # Without an offset the time is read in the schedule's time zone.
    assert parse_since("2026-03-01T11:00", at=NOW, timezone="Europe/Paris") == NOW - 7200
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_since("yesterday", at=NOW)


def _digest(seconds: list[float]) -> Digest:
    conversations = tuple(
        ConversationResult("desk", f"desk:c{i}", Outcome.ANSWERED, 1, turn_seconds=s)
        for i, s in enumerate(seconds)
    )
    return Digest(NOW, NOW + 5, False, ("desk",), conversations, turn_seconds=tuple(seconds))


def test_percentiles_are_nearest_rank_and_slowest_come_first() -> None:
    digest = _digest([float(i) for i in range(1, 101)])
    assert digest.percentile(0.5) == 50.0 and digest.percentile(0.95) == 95.0
    assert [c.turn_seconds for c in digest.slowest(3)] == [100.0, 99.0, 98.0]
    assert _digest([]).percentile(0.5) is None


def test_summary_names_counts_and_reasons() -> None:
    digest = Digest(
        NOW,
        NOW + 1,
        True,
        ("desk",),
        (
            ConversationResult(
                "desk", "desk:1", Outcome.SKIPPED, 1, reason="a human has taken over this thread"
            ),
            ConversationResult(
                "desk", "desk:2", Outcome.FAILED, 1, reason="reply not delivered: 403"
            ),
        ),
    )
    text = digest.summary()
    assert "(dry run)" in text and "1 skipped" in text and "1 failed" in text
    assert "a human has taken over this thread" in text and "403" in text
    assert not digest.ok


def test_the_progress_bar_draws_on_a_terminal_and_logs_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    bar = ProgressBar(terminal)
    bar(Progress(1, 4, {"answered": 1}))
    bar(Progress(4, 4, {"answered": 4}))
    drawn = terminal.getvalue()
    assert drawn.startswith("\r[") and "1/4" in drawn and "4/4" in drawn and drawn.endswith("\n")

    piped = io.StringIO()
    with caplog.at_level(logging.INFO, logger="bot.triage"):
        plain = ProgressBar(piped)
        for done in range(101):
            plain(Progress(done, 100, {}))
    assert piped.getvalue() == ""
    assert len([r for r in caplog.records if "conversations finished" in r.message]) == 11


class _PostingDesk(Desk):
    """A channel that declares the digest capability."""

    posts_digest = True

    def __init__(self) -> None:
        super().__init__([])
        self.digests: list[tuple[str, str]] = []

    async def post_digest(self, destination: str, text: str) -> None:
        self.digests.append((destination, text))


async def test_the_digest_goes_through_the_connector_that_declares_posting_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    digest = Digest(started_at=NOW, finished_at=NOW + 1, dry_run=True, channels=(), conversations=())
    poster, plain = _PostingDesk(), Desk([])

    # Through a dry-run stand-in too: a digest reaches the team, never a customer.
    assert await post_digest({poster.name: poster.dry_run()}, digest, {poster.name: "CLEADS"})
    assert poster.digests == [("CLEADS", digest.summary())]

    with caplog.at_level(logging.WARNING, logger="bot.triage"):
        assert not await post_digest({plain.name: plain}, digest, {plain.name: "CLEADS"})
        assert not await post_digest({}, digest, {"elsewhere": "CLEADS"})
    assert len([r for r in caplog.records if "digest not posted" in r.message]) == 2


def test_a_channel_without_a_dry_run_mode_gets_a_stand_in_under_its_own_name() -> None:
    desk = Desk([])
    stand_in = desk.dry_run()
    assert isinstance(stand_in, DryRunConnector) and stand_in.name == desk.name
    assert stand_in.dry_run() is stand_in and not stand_in.posts_digest


class _FilesDesk(Desk):
    """A channel that fetches its attachments' content when a turn starts."""

    async def resolve_turn(
        self, smith: Smith, thread: Thread, messages: tuple[InboundMessage, ...]
    ) -> tuple[InboundMessage, ...]:
        return tuple(
            dataclasses.replace(m, attachments=tuple(
                dataclasses.replace(a, data=b"fetched") for a in m.attachments))
            for m in messages
        )


async def test_a_dry_runs_turns_see_the_files_a_real_one_would() -> None:
    message = InboundMessage("desk", "k", "t", "s", "see attached",
                             attachments=(Attachment("a.log", "text/plain", 7, url="u"),))
    stand_in = _FilesDesk([]).dry_run()
    [resolved] = await stand_in.resolve_turn(None, None, (message,))  # type: ignore[arg-type]
    assert [a.data for a in resolved.attachments] == [b"fetched"]
