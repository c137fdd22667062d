"""Triage against the fake Intercom (requests validated against the 2.14 spec) through the real
Intercom connector: a 200-conversation backlog, webhooks racing the sweep, dry run."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Application, launcher
from bot.config import Settings
from bot.domain import Control
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.store import ThreadChange
from bot.triage import Sweeper, SweepOptions, TriageCommand, run_command
from tests.conftest import make_settings
from tests.connectors.intercom.conftest import (
    ScriptedRunner,
    deliver,
    intercom_section,
    running_app,
)
from tests.fakes.intercom import FakeIntercom

HUMAN_REASON = "a human has taken over this thread"


@pytest.fixture
async def intercom() -> AsyncIterator[FakeIntercom]:
    fake = FakeIntercom()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    if fake.violations:
        pytest.fail("requests that violate Intercom's spec:\n" + "\n".join(fake.violations))


def fill(fake: FakeIntercom, n: int) -> list[str]:
    """``n`` open conversations waiting for the bot: every 10th asks for a person, every 10th
    (+1) says the problem is solved, the rest ask a question."""
    ids = []
    for i in range(n):
        contact = fake.add_contact(f"Customer {i}", company=None)
        if i % 10 == 0:
            text = "Please escalate, I need a person"
        elif i % 10 == 1:
            text = "Thanks, that solved it"
        else:
            text = f"How do I export my invoices? ({i})"
        ids.append(fake.start_conversation(contact, f"<p>{text}</p>"))
    return ids


def settings_for(db_url: str, fake: FakeIntercom, **intercom: Any) -> Settings:
    return make_settings(
        db_url,
        intercom=intercom_section(fake, **intercom),
        connectors=["intercom"],
        triage={"since": ""},
    )


async def triage(settings: Settings, command: TriageCommand) -> tuple[int, str]:
    if not settings.database.url.startswith("sqlite"):
        db = Database(settings.database)
        try:
            await upgrade(db.engine)
        finally:
            await db.dispose()

    async def factory(app: Application) -> ScriptedRunner:
        return ScriptedRunner(app)

    out, err = io.StringIO(), io.StringIO()
    code = await run_command(
        settings, command, out=out, err=err, launch=launcher(runner_factory=factory)  # type: ignore[arg-type]
    )
    return code, out.getvalue() + err.getvalue()


def comment_posts(fake: FakeIntercom, conversation_id: str) -> int:
    return sum(
        1
        for r in fake.calls("POST", rf"^/conversations/{conversation_id}/reply$")
        if isinstance(r.body, dict) and r.body.get("message_type") == "comment"
    )


# ~500 spec-validated requests through the SDK twice: 20-40 s on a loaded 2-core machine, so
# this one test gets more than the default 60 s before it is called hung.
@pytest.mark.timeout(150)
async def test_a_backlog_of_200_conversations_is_answered_once_and_a_second_run_does_nothing(
    sqlite_url: str, intercom: FakeIntercom, tmp_path: Path
) -> None:
    # SQLite only: the same backlog runs on PostgreSQL in test_sweep.py (fake helpdesk); with
    # every request validated against the spec, 200 conversations twice is this test's budget.
    db_url = sqlite_url
    ids = fill(intercom, 200)
    # Not the bot's: a human admin has it (not listed at all) …
    taken = fill(intercom, 1)[0]
    intercom.assign(taken, intercom.human_admin_id)
    settings = settings_for(db_url, intercom)
    path = tmp_path / "digest.json"

    code, output = await triage(settings, TriageCommand(once=True, concurrency=16, json_path=path))

    assert code == 0, output
    for i, cid in enumerate(ids):
        conversation = intercom.conversations[cid]
        if i % 10 == 1:
            assert conversation.state == "closed" and comment_posts(intercom, cid) == 0, i
            assert len(intercom.notes(cid)) == 1
        else:
            assert comment_posts(intercom, cid) == 1, i
            assert len(intercom.replies(cid)) == 1
        if i % 10 == 0:
            assert "escalated" in intercom.tag_names(cid)
    assert intercom.calls("POST", rf"^/conversations/{taken}/") == []
    digest = json.loads(path.read_text())
    counts = digest["counts"]
    assert (counts["conversations"], counts["answered"], counts["escalated"], counts["closed"]) == (
        200,
        160,
        20,
        20,
    )
    assert counts["failed"] == counts["skipped"] == 0

    before = len(intercom.requests)
    code, output = await triage(settings, TriageCommand(once=True, json_path=path))
    assert code == 0, output
    assert json.loads(path.read_text())["counts"]["conversations"] == 0
    writes = [r for r in intercom.requests[before:] if r.method != "GET" and "search" not in r.path]
    assert writes == [], "a second sweep right after must not write anything"


async def test_a_conversation_the_bot_handed_to_a_human_is_skipped_with_the_reason(
    sqlite_url: str, intercom: FakeIntercom, tmp_path: Path
) -> None:
    [cid, other] = fill(intercom, 2)
    settings = settings_for(sqlite_url, intercom)
    # Earlier, this conversation went to a person in supportbot (escalated, not assigned).
    app = Application(settings, serve_http=False, run_pipeline=False)
    await app.start()
    try:
        agent = await app.store.ensure_agent("support", "Support bot")
        contact = intercom.conversations[cid].contact_id
        smith = await app.store.ensure_smith(f"intercom:{contact}", agent.id)
        thread = await app.store.ensure_thread(smith, f"intercom:{cid}", "intercom")
        await app.store.update_thread(thread.id, ThreadChange(control=Control.HUMAN))
    finally:
        await app.stop()
    path = tmp_path / "d.json"

    code, output = await triage(settings, TriageCommand(once=True, json_path=path))

    assert code == 0, output
    digest = json.loads(path.read_text())
    assert digest["skipped"] == [
        {"channel": "intercom", "thread": f"intercom:{cid}", "reason": HUMAN_REASON}
    ]
    assert comment_posts(intercom, cid) == 0 and comment_posts(intercom, other) == 0  # closed
    assert HUMAN_REASON in output


async def test_webhooks_racing_the_sweep_still_answer_each_message_once(
    sqlite_url: str, intercom: FakeIntercom
) -> None:
    ids = fill(intercom, 40)
    async with running_app(sqlite_url, intercom) as (app, runner):
        notifications = [
            intercom.notification("conversation.user.created", cid) for cid in ids[:25]
        ]
        sweep = asyncio.create_task(Sweeper(app.daemon).sweep(SweepOptions()))
        statuses = await asyncio.gather(*(deliver(app, n) for n in notifications))
        digest = await sweep
    assert all(status == 200 for status, _ in statuses)
    assert len(runner.seen) == 40
    for i, cid in enumerate(ids):
        expected = 0 if i % 10 == 1 else 1
        assert comment_posts(intercom, cid) == expected, (i, cid)
    counts = digest.counts
    assert counts["failed"] == 0 and counts["conversations"] == 40


async def test_dry_run_writes_notes_and_nothing_the_customer_sees(
    sqlite_url: str, intercom: FakeIntercom
) -> None:
    ids = fill(intercom, 12)
    settings = settings_for(sqlite_url, intercom)

    code, output = await triage(settings, TriageCommand(once=True, dry_run=True))

    assert code == 0, output
    for cid in ids:
        assert comment_posts(intercom, cid) == 0
        assert intercom.conversations[cid].state == "open"
        assert intercom.notes(cid), "the team sees what the bot would have done"
    assert "dry run" in output
