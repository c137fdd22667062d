"""The digest posted to a Slack channel through the Slack connector's token (fake Slack)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest

from bot.app import launcher
from bot.triage import TriageCommand, run_command
from tests.conftest import make_settings
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.triage.conftest import runner_factory
from tests.triage.fakes import Desk, backlog

DIGEST_CHANNEL = "CLEADS"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


async def test_the_digest_is_posted_to_the_configured_slack_channel(
    sqlite_url: str, slack: FakeSlack
) -> None:
    desk = Desk(backlog(5, start=2))
    settings = make_settings(
        sqlite_url,
        connectors=["slack"],
        slack={
            "bot_token": BOT_TOKEN,
            "signing_secret": SIGNING_SECRET,
            "base_url": slack.base_url,
            "post_interval_seconds": 0,
        },
        triage={"since": "", "digest_slack_channel": DIGEST_CHANNEL},
    )
    out, err = io.StringIO(), io.StringIO()

    code = await run_command(
        settings,
        TriageCommand(once=True, channel="desk"),
        out=out,
        err=err,
        launch=launcher(connectors=[desk], runner_factory=runner_factory()),
    )

    assert code == 0, err.getvalue()
    posts = [c for c in slack.calls_to("chat.postMessage") if c.get("channel") == DIGEST_CHANNEL]
    assert len(posts) == 1
    assert "5 conversations" in posts[0]["text"] and "5 answered" in posts[0]["text"]
