"""A running daemon with the Slack connector against the fake Slack, and a scripted turn runner
whose decisions follow the customer's words ("escalate", "solved", "long", "markdown")."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest

from bot.app import Application
from bot.config import DatabaseSettings
from bot.domain import (
    ActionKind,
    Control,
    InboundMessage,
    OutboxStatus,
    PlannedAction,
    StopReason,
    Thread,
    ThreadState,
    now,
)
from bot.pipeline.events import TurnEvent
from bot.pipeline.turn import TurnContext, TurnResult
from bot.records import connector_runtime
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.store import Store, ThreadChange
from connectors.slack import SlackConnector, create
from tests.conftest import make_settings
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, TEAM, FakeSlack, signed_headers

CUSTOMER = "UCUST"
AGENT = "UAGENT"
SUPPORT = "CSUP"
ESCALATION = "CESC"
ONCALL_GROUP = "S0ONCALL"
# What a model writes: Markdown, with Slack markup that must not ping anyone.
MARKDOWN_ANSWER = (
    "## Your export\n\n**Fixed**, _mostly_: run `export --since 2d` (not `a < b`), see the "
    "[guide](https://acme.example/export) or <https://acme.example/status>. <!channel> <@U0BOSS>\n\n"
    "- one\n- two"
)
LONG_ANSWER = "\n\n".join(f"Paragraph {i}: " + "all work and no play " * 20 for i in range(40))


class ScriptedRunner:
    """Echoes, or escalates/closes/answers at length when the customer says so, through the
    channel's own escalation and close actions (as the engine does). Its words go out as
    ``message.delta`` events first, as a model's would; "hold" keeps the turn open until
    ``gate`` is set, "chatter" says something before answering otherwise, "silent" says
    something but ends without a reply, and "explode" raises after speaking."""

    def __init__(self, app: Application):
        self.app = app
        self.turns: list[TurnContext] = []
        self.gate = asyncio.Event()

    async def say(self, ctx: TurnContext, text: str) -> None:
        for word in re.findall(r"\S+\s*", text):
            await ctx.emit(TurnEvent("message.delta", ctx.run_id, ctx.thread.id, {"delta": word}))
            await asyncio.sleep(0)

    async def run(self, ctx: TurnContext) -> TurnResult:
        self.turns.append(ctx)
        text = ctx.user_text
        if "explode" in text:
            await self.say(ctx, "Let me see")
            raise RuntimeError("the turn blew up")
        if "silent" in text:
            await self.say(ctx, "Hmm, one moment")
            return TurnResult(output_text="", stop_reason=StopReason.END_TURN, model="scripted")
        if "chatter" in text:
            await self.say(ctx, "Let me look that up. ")
        connector = self.app.connectors[ctx.thread.channel]
        change = ThreadChange()
        stop = StopReason.END_TURN
        if "escalate" in text:
            actions = connector.escalation_actions(
                reason="the customer asked for a person", priority="high",
                summary="Cannot log in since this morning", thread=ctx.thread,
            )
            stop = StopReason.ESCALATED
            change = ThreadChange(state=ThreadState.ESCALATED, control=Control.HUMAN)
        elif "solved" in text:
            actions = connector.close_actions(resolution_summary="password reset", thread=ctx.thread)
            stop = StopReason.CLOSED
            change = ThreadChange(state=ThreadState.CLOSED)
        elif "long" in text:
            actions = [PlannedAction(ActionKind.REPLY, text=LONG_ANSWER)]
        elif "markdown" in text:
            actions = [PlannedAction(ActionKind.REPLY, text=MARKDOWN_ANSWER)]
        else:
            actions = [PlannedAction(ActionKind.REPLY, text=f"**Echo:** {text}")]
        replies = [a.text for a in actions if a.kind is ActionKind.REPLY and a.text]
        if replies:
            await self.say(ctx, replies[0])
        if "hold" in text:
            await self.gate.wait()
        return TurnResult(output_text=text, stop_reason=stop, actions=tuple(actions),
                          thread_change=change, model="scripted")


Daemon = Callable[..., AbstractAsyncContextManager[Application]]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        fake.add_user(CUSTOMER, "Carla Customer", "carla@example.com", "CTO")
        fake.add_user(AGENT, "Sam Support", "sam@acme.example", "Support engineer")
        yield fake


@pytest.fixture
def daemon(db_url: str, slack: FakeSlack) -> Daemon:
    """``async with daemon(**slack_overrides) as app:`` — the whole daemon, Slack enabled
    (``pipeline={...}`` overrides pipeline settings)."""

    @asynccontextmanager
    async def run(pipeline: dict[str, Any] | None = None, **overrides: Any) -> AsyncIterator[Application]:
        section = {
            "bot_token": BOT_TOKEN,
            "signing_secret": SIGNING_SECRET,
            "base_url": slack.base_url,
            "file_hosts": ["127.0.0.1"],  # the fake serves url_private
            "support_channels": [SUPPORT],
            "channels": {"CMENTIONS": {"mode": "mentions"}},
            "escalation_channel": ESCALATION,
            "escalation_mention": ONCALL_GROUP,
            "post_interval_seconds": 0,
            **overrides,
        }
        settings = make_settings(db_url, slack=section, connectors=["slack"], pipeline=pipeline or {})

        async def scripted(app: Application) -> ScriptedRunner:
            return ScriptedRunner(app)

        app = Application(settings, runner_factory=scripted)
        await upgrade(app.db.engine)  # the daemon only auto-migrates SQLite
        async with app:
            yield app

    return run


async def deliver(app: Application, body: dict[str, Any], *, retry: int | None = None,
                  secret: str = SIGNING_SECRET) -> aiohttp.ClientResponse:
    """POST a signed Events API request to the daemon's own HTTP port."""
    raw = json.dumps(body).encode()
    headers = signed_headers(raw, secret=secret)
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{app.http_port}/slack/events", data=raw,
                     headers=headers) as response,
    ):
        await response.read()
        return response


async def settled(app: Application) -> bool:
    """Nothing left to do: every inbox message handled and every action sent."""
    counts = await app.store.inbox_counts()
    outbox = await app.store.outbox_counts()
    return not counts.get("pending") and not outbox.get(OutboxStatus.PENDING.value)


def runner_of(app: Application) -> ScriptedRunner:
    assert isinstance(app.runner, ScriptedRunner)
    return app.runner


def inbound(app: Application) -> Callable[[], Any]:
    async def items() -> list[InboundMessage]:
        return [InboundMessage.from_json(i["payload"]) for i in await app.store.inbox_items()]

    return items


# -- one connector on its own (``execute``, live replies) ----------------------------------------

ROOT = "1700000000.000100"
Make = Callable[..., Any]


@pytest.fixture
async def make_connector(sqlite_url: str, slack: FakeSlack) -> AsyncIterator[Make]:
    """Started connectors on the fake Slack; ``execute`` never touches the store, so one
    database kind is enough here (the end-to-end tests run on both)."""
    started: list[SlackConnector] = []
    db = Database(DatabaseSettings(url=sqlite_url))
    await upgrade(db.engine)
    store = Store(db)

    async def make(**overrides: Any) -> SlackConnector:
        section = {"bot_token": BOT_TOKEN, "base_url": slack.base_url, "post_interval_seconds": 0,
                   "file_hosts": ["127.0.0.1"],
                   "escalation_channel": ESCALATION, "escalation_mention": ONCALL_GROUP, **overrides}
        settings = make_settings("sqlite://", slack=section)

        async def submit(message: InboundMessage) -> bool:
            return True

        connector = create(connector_runtime(settings, store, submit=submit, channel="slack"))
        assert isinstance(connector, SlackConnector)
        await connector.start()
        started.append(connector)
        return connector

    yield make
    for connector in started:
        await connector.stop()
    await db.dispose()


def slack_thread() -> Thread:
    """A support-channel thread rooted at ``ROOT``, started by ``CUSTOMER``."""
    return Thread(
        id="thr_1", smith_id="smt_1", agent_id="agt_1",
        external_id=f"slack:{TEAM}:{SUPPORT}:{ROOT}", channel="slack", state=ThreadState.OPEN,
        control=Control.BOT, title=None,
        metadata={"channel": SUPPORT, "thread_ts": ROOT, "ts": ROOT, "team": TEAM, "user": CUSTOMER},
        created_at=now(), updated_at=now(),
    )
