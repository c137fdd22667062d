"""Sweeps end to end: fake helpdesk backlog → inbox → dispatcher → outbox → digest."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.app import Application, launcher
from bot.config import DatabaseSettings, Settings
from bot.domain import ActionKind, Control, OutboxStatus
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.store import ThreadChange
from bot.triage import (
    ALREADY_HANDLED,
    Outcome,
    Progress,
    Sweeper,
    SweepOptions,
    TriageCommand,
    command_settings,
    run_command,
)
from tests.conftest import make_settings
from tests.pipeline.fakes import wait_for
from tests.triage.conftest import AppFactory, runner_factory
from tests.triage.fakes import Desk, DeskConversation, backlog

HUMAN_REASON = "a human has taken over this thread"


async def _migrated(db_url: str) -> None:
    db = Database(DatabaseSettings(url=db_url))
    try:
        await upgrade(db.engine)
    finally:
        await db.dispose()


async def _triage(settings: Settings, desk: Desk, command: TriageCommand) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run_command(
        settings,
        command,
        out=out,
        err=err,
        launch=launcher(connectors=[desk], runner_factory=runner_factory()),
    )
    return code, out.getvalue()


def _answers(desk: Desk, conversation_id: str) -> Counter[ActionKind]:
    return Counter(a.kind for a in desk.actions_on(conversation_id))


async def test_a_backlog_of_200_is_handled_once_and_a_second_run_does_nothing(
    db_url: str, tmp_path: Path
) -> None:
    await _migrated(db_url)
    desk = Desk(backlog(200))
    settings = make_settings(db_url, triage={"since": ""})
    digest_file = tmp_path / "digest.json"

    code, table = await _triage(
        settings, desk, TriageCommand(once=True, concurrency=16, json_path=digest_file)
    )

    assert code == 0, table
    for i in range(200):
        kinds = _answers(desk, f"c{i}")
        if i % 10 == 0:
            assert kinds == {ActionKind.NOTE: 1, ActionKind.REPLY: 1}, (i, kinds)
        elif i % 10 == 1:
            assert kinds == {ActionKind.NOTE: 1, ActionKind.CLOSE: 1}, (i, kinds)
            assert desk.conversations[f"c{i}"].state == "closed"
        else:
            assert kinds == {ActionKind.REPLY: 1}, (i, kinds)
    digest = json.loads(digest_file.read_text())
    assert digest["counts"] == {
        "conversations": 200,
        "messages": 200,
        "answered": 160,
        "escalated": 20,
        "closed": 20,
        "skipped": 0,
        "failed": 0,
        "pending": 0,
    }
    assert "answered" in table and "p95" in table

    sent = len(desk.executed)
    code, table = await _triage(settings, desk, TriageCommand(once=True, json_path=digest_file))
    assert code == 0
    assert len(desk.executed) == sent
    assert json.loads(digest_file.read_text())["counts"]["conversations"] == 0


async def test_messages_listed_again_are_not_answered_again(
    sqlite_url: str, make_app: AppFactory
) -> None:
    desk = Desk(backlog(20))
    app = await make_app(sqlite_url, desk)
    first = await Sweeper(app.daemon).sweep(SweepOptions())
    assert first.counts["conversations"] == 20
    sent = len(desk.executed)
    # The helpdesk still lists the same parts (a stale search index, say): same dedup keys.
    for conversation in desk.conversations.values():
        conversation.parts = [p for p in conversation.parts if p[0] == "customer"]
        conversation.state = "open"

    again = await Sweeper(app.daemon).sweep(SweepOptions())

    assert len(desk.executed) == sent
    assert again.counts["skipped"] == 20
    assert again.skipped_reasons == {ALREADY_HANDLED: 20}


async def test_webhooks_during_a_sweep_still_give_one_answer_per_message(
    db_url: str, make_app: AppFactory
) -> None:
    desk = Desk(backlog(100))
    app = await make_app(db_url, desk, delay=0.01, pipeline={"concurrency": 8})
    webhook_deliveries = [
        c.message(part_id, text)
        for c in list(desk.conversations.values())[:60]
        for part_id, text in c.pending()
    ]
    sweep = asyncio.create_task(Sweeper(app.daemon).sweep(SweepOptions()))
    # The webhook path delivers the same parts, twice each (Intercom retries), mid-sweep.
    results = await asyncio.gather(*(app.submit(m) for m in webhook_deliveries * 2))
    digest = await sweep

    assert results.count(True) <= len(webhook_deliveries)
    runner_turns = len(app.runner.turns)  # type: ignore[union-attr]
    assert runner_turns == 100
    for conversation_id in desk.conversations:
        kinds = _answers(desk, conversation_id)
        assert kinds[ActionKind.REPLY] + kinds[ActionKind.CLOSE] == 1, (conversation_id, kinds)
    counts = digest.counts
    assert counts["conversations"] == 100 and counts["failed"] == 0 and counts["pending"] == 0
    assert counts["answered"] + counts["escalated"] + counts["closed"] + counts["skipped"] == 100
    assert set(digest.skipped_reasons) <= {ALREADY_HANDLED}


async def test_turns_start_while_the_rest_is_still_being_listed(
    sqlite_url: str, make_app: AppFactory
) -> None:
    desk = Desk(backlog(10, start=2), hold_listing_after=2)
    app = await make_app(sqlite_url, desk)
    sweep = asyncio.create_task(Sweeper(app.daemon).sweep(SweepOptions()))

    # The listing is held after two conversations: both are answered all the same.
    await wait_for(lambda: bool(desk.actions_on("c2") and desk.actions_on("c3")))
    assert desk.listed == 2 and not sweep.done()
    desk.go_on.set()
    digest = await sweep

    assert digest.counts["conversations"] == 10 and digest.counts["answered"] == 8
    assert digest.ok


async def test_what_a_broken_listing_found_before_it_broke_is_answered_and_reported(
    sqlite_url: str, make_app: AppFactory
) -> None:
    desk = Desk(backlog(6, start=2), fail_listing_after=3)
    app = await make_app(sqlite_url, desk)

    digest = await Sweeper(app.daemon).sweep(SweepOptions())

    assert [c.thread for c in digest.conversations] == ["desk:c2", "desk:c3", "desk:c4"]
    assert digest.counts["answered"] == 3
    assert all(desk.actions_on(f"c{i}") for i in (2, 3, 4))
    assert not any(desk.actions_on(f"c{i}") for i in (5, 6, 7))
    assert "502 bad gateway" in digest.fetch_errors["desk"]
    assert not digest.ok


async def test_the_sweep_hears_when_work_finishes_rather_than_waiting_for_its_poll(
    sqlite_url: str, make_app: AppFactory
) -> None:
    desk = Desk(backlog(20, start=2))
    app = await make_app(sqlite_url, desk, delay=0.05)

    # A poll far longer than the test's timeout (60 s): only the pipeline's word can end this
    # sweep in time.
    digest = await Sweeper(app.daemon).sweep(SweepOptions(poll_seconds=600.0))

    assert digest.counts["conversations"] == 20 and digest.counts["pending"] == 0
    assert (digest.counts["answered"], digest.counts["escalated"]) == (16, 2) and digest.ok


async def test_a_conversation_under_human_control_is_skipped_with_its_reason(
    sqlite_url: str, make_app: AppFactory
) -> None:
    desk = Desk(backlog(3, start=2))
    app = await make_app(sqlite_url, desk)
    agent = await app.store.ensure_agent("support", "Support bot")
    smith = await app.store.ensure_smith("desk:u2", agent.id)
    thread = await app.store.ensure_thread(smith, "desk:c2", "desk")
    await app.store.update_thread(thread.id, ThreadChange(control=Control.HUMAN))
    seen: list[Progress] = []

    digest = await Sweeper(app.daemon).sweep(SweepOptions(), progress=seen.append)

    assert desk.actions_on("c2") == []
    [skipped] = digest.of(Outcome.SKIPPED)
    assert (skipped.thread, skipped.reason) == ("desk:c2", HUMAN_REASON)
    assert digest.counts["answered"] == 2
    assert digest.to_json()["skipped"] == [
        {"channel": "desk", "thread": "desk:c2", "reason": HUMAN_REASON}
    ]
    assert seen[-1].finished == seen[-1].total == 3


async def test_the_digest_reports_failures_with_their_error_and_its_json_shape(
    sqlite_url: str, tmp_path: Path
) -> None:
    conversations = backlog(4, start=2) + [
        DeskConversation(id="bad", customer="ub", parts=[("customer", "b0", "broken account")])
    ]
    desk = Desk(conversations, fail_on="broken")
    settings = make_settings(sqlite_url, triage={"since": ""})
    path = tmp_path / "d.json"

    code, table = await _triage(settings, desk, TriageCommand(once=True, json_path=path))

    assert code == 1, "a failed conversation makes the exit status 1"
    data = json.loads(path.read_text())
    assert set(data) == {
        "started_at",
        "finished_at",
        "duration_seconds",
        "tick",
        "dry_run",
        "channels",
        "counts",
        "skipped",
        "skipped_reasons",
        "failed",
        "pending",
        "turn_seconds",
        "slowest",
        "fetch_errors",
        "conversations",
    }
    assert data["channels"] == ["desk"] and data["dry_run"] is False
    assert data["counts"]["answered"] == 4 and data["counts"]["failed"] == 1
    [failed] = data["failed"]
    assert failed["thread"] == "desk:bad" and "403 forbidden" in failed["error"]
    assert data["turn_seconds"]["count"] == 5
    assert 0 <= data["turn_seconds"]["p50"] <= data["turn_seconds"]["p95"]
    assert len(data["slowest"]) == 5 and {"channel", "thread", "seconds", "outcome"} == set(
        data["slowest"][0]
    )
    conversation = next(c for c in data["conversations"] if c["thread"] == "desk:c3")
    assert conversation["outcome"] == "answered" and conversation["actions"] == ["reply:done"]
    assert "Failed" in table and "desk:bad" in table


async def test_dry_run_sends_nothing_customer_facing_but_records_the_decisions(
    sqlite_url: str, tmp_path: Path
) -> None:
    desk = Desk(backlog(10))
    settings = make_settings(sqlite_url, triage={"since": ""})

    code, table = await _triage(settings, desk, TriageCommand(once=True, dry_run=True))

    assert code == 0
    assert desk.executed == [], "the desk has no dry-run mode: nothing may reach it"
    assert "dry run" in table
    db = Database(DatabaseSettings(url=sqlite_url))
    try:
        from bot.store.store import Store

        entries = await Store(db).outbox_entries(limit=1000)
    finally:
        await db.dispose()
    assert len(entries) == 8 + 2 * 2
    assert {(e.status, e.remote_id) for e in entries} == {(OutboxStatus.DONE, "dry-run")}
    # The settings are not how a dry run is switched on: each connector's ``dry_run`` is.
    dry = command_settings(settings, TriageCommand(once=True, dry_run=True))
    assert dry.intercom.dry_run is False


async def test_limit_since_and_channel_reach_the_connector(
    sqlite_url: str, make_app: AppFactory
) -> None:
    desk = Desk(backlog(30))
    settings = make_settings(sqlite_url, triage={"since": "2h"})
    started = time.time()

    code, _table = await _triage(settings, desk, TriageCommand(once=True, limit=5, channel="desk"))

    assert code == 0
    [(since, limit)] = desk.fetches
    assert limit == 5 and since is not None and abs(since - (started - 7200)) < 60
    assert sum(1 for c in desk.conversations.values() if desk.actions_on(c.id)) == 5

    code, _ = await _triage(settings, desk, TriageCommand(once=True, channel="slack"))
    assert code == 2, "a channel that is not enabled is a usage error"
    code, _ = await _triage(settings, desk, TriageCommand(once=True, since="last tuesday"))
    assert code == 2


async def test_without_once_and_without_a_schedule_it_says_so(sqlite_url: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = await run_command(
        make_settings(sqlite_url), TriageCommand(), out=out, err=err, launch=launcher()
    )
    assert code == 2 and "--once" in err.getvalue()


async def test_a_sweep_needs_the_pipeline(sqlite_url: str) -> None:
    app = Application(
        make_settings(sqlite_url),
        run_pipeline=False,
        serve_http=False,
        runner_factory=runner_factory(),
    )
    await app.start()
    try:
        with pytest.raises(RuntimeError, match="dispatcher"):
            await Sweeper(app.daemon).sweep(SweepOptions())
    finally:
        await app.stop()


async def test_without_once_it_sweeps_on_the_schedule_until_stopped(sqlite_url: str) -> None:
    desk = Desk(backlog(6, start=2))
    settings = make_settings(sqlite_url, triage={"since": "", "interval_seconds": 0.5})
    stop = asyncio.Event()
    out, err = io.StringIO(), io.StringIO()
    command = asyncio.create_task(
        run_command(
            settings,
            TriageCommand(),
            out=out,
            err=err,
            launch=launcher(connectors=[desk], runner_factory=runner_factory()),
            stop=stop,
        )
    )
    await wait_for(lambda: all(desk.actions_on(c) for c in desk.conversations) or command.done())
    stop.set()
    assert await command == 0, err.getvalue()
    assert "schedule" in err.getvalue()
    assert all(len(desk.actions_on(c)) == 1 for c in desk.conversations)
