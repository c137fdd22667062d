"""Triage over Slack support channels (fake Slack): unanswered top-level messages get one
threaded answer each; a second sweep does nothing; a dry run posts nothing."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import launcher
from bot.config import Settings
from bot.triage import TriageCommand, run_command
from tests.conftest import make_settings
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.triage.conftest import runner_factory

SUPPORT = "CSUPPORT"
CUSTOMER = "UCUST"
LEADS = "CLEADS"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        fake.add_user(CUSTOMER, "Carla Customer", "carla@example.com", "CTO")
        yield fake


def waiting(slack: FakeSlack, texts: list[str]) -> list[str]:
    stamps = []
    for text in texts:
        ts = slack.next_ts()
        slack.messages.setdefault(SUPPORT, []).append(
            {"type": "message", "user": CUSTOMER, "text": text, "ts": ts}
        )
        stamps.append(ts)
    return stamps


def settings_for(db_url: str, slack: FakeSlack) -> Settings:
    return make_settings(
        db_url,
        connectors=["slack"],
        slack={
            "bot_token": BOT_TOKEN,
            "signing_secret": SIGNING_SECRET,
            "base_url": slack.base_url,
            "support_channels": [SUPPORT],
            "post_interval_seconds": 0,
            "working_reaction": None,
        },
        triage={"since": "", "digest_slack_channel": LEADS},
    )


async def triage(settings: Settings, command: TriageCommand) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run_command(
        settings, command, out=out, err=err, launch=launcher(runner_factory=runner_factory())
    )
    return code, out.getvalue() + err.getvalue()


def threaded_posts(slack: FakeSlack, ts: str) -> list[dict[str, object]]:
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if c.get("channel") == SUPPORT and c.get("thread_ts") == ts
    ]


async def test_unanswered_support_channel_messages_get_one_threaded_answer(
    sqlite_url: str, slack: FakeSlack, tmp_path: Path
) -> None:
    stamps = waiting(slack, [f"How do I rotate my API key? ({i})" for i in range(8)])
    settings = settings_for(sqlite_url, slack)
    path = tmp_path / "d.json"

    code, output = await triage(settings, TriageCommand(once=True, channel="slack", json_path=path))

    assert code == 0, output
    assert all(len(threaded_posts(slack, ts)) == 1 for ts in stamps)
    assert json.loads(path.read_text())["counts"]["answered"] == 8
    [digest] = [c for c in slack.calls_to("chat.postMessage") if c.get("channel") == LEADS]
    assert "8 answered" in str(digest["text"])

    code, output = await triage(settings, TriageCommand(once=True, channel="slack", json_path=path))
    assert code == 0, output
    assert json.loads(path.read_text())["counts"]["conversations"] == 0
    assert all(len(threaded_posts(slack, ts)) == 1 for ts in stamps)


async def test_a_slack_dry_run_posts_nothing_in_the_support_channel(
    sqlite_url: str, slack: FakeSlack
) -> None:
    waiting(slack, ["Is the API down?", "Where are my invoices?"])

    code, output = await triage(
        settings_for(sqlite_url, slack), TriageCommand(once=True, dry_run=True)
    )

    assert code == 0, output
    assert [c for c in slack.calls_to("chat.postMessage") if c.get("channel") == SUPPORT] == []
    assert slack.calls_to("reactions.add") == []
