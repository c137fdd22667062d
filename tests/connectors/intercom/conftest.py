"""Fixtures for the Intercom connector: the fake Intercom, a scripted turn runner, signed
webhook deliveries to a running daemon, and a poll-until helper."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from bot.app import Application
from bot.domain import ActionKind, Control, PlannedAction, StopReason, ThreadState
from bot.pipeline.turn import TurnContext, TurnResult
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.store import ThreadChange
from connectors.intercom.webhook import sign
from tests.conftest import make_settings
from tests.fakes.intercom import FakeIntercom

CLIENT_SECRET = "whsec-test-secret"


@pytest.fixture
async def fake_intercom() -> AsyncIterator[FakeIntercom]:
    """A fake Intercom; any request that violates the 2.14 spec fails the test."""
    fake = FakeIntercom()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    if fake.violations:
        pytest.fail("requests that violate Intercom's spec:\n" + "\n".join(fake.violations))


def intercom_section(fake: FakeIntercom, **overrides: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "token": fake.token,
        "client_secret": CLIENT_SECRET,
        "base_url": fake.base_url,
        "api_version": fake.api_version,
        "retry_backoff_seconds": 0.01,
        "timeout_seconds": 5,
        "poll_interval_seconds": 0,
        "attachment_hosts": ["127.0.0.1"],  # the fake serves the uploads
    }
    section.update(overrides)
    return section


@dataclass
class ScriptedRunner:
    """A turn runner that answers by keyword and records what each turn saw.

    "escalate" → ESCALATE through the connector's escalation actions; "solved" → CLOSE;
    anything else → a reply echoing the message and the number of earlier turns it saw.
    """

    app: Application
    seen: list[TurnContext] = field(default_factory=list)

    async def run(self, ctx: TurnContext) -> TurnResult:
        self.seen.append(ctx)
        text = ctx.user_text
        connector = self.app.connectors["intercom"]
        if "escalate" in text.lower():
            actions = connector.escalation_actions(
                reason="customer asked for a person",
                priority="high",
                summary=f"Customer wrote: {text}",
                thread=ctx.thread,
            )
            return TurnResult(
                output_text="escalated",
                stop_reason=StopReason.ESCALATED,
                actions=tuple(actions),
                thread_change=ThreadChange(state=ThreadState.ESCALATED, control=Control.HUMAN),
            )
        if "solved" in text.lower():
            actions = connector.close_actions(resolution_summary="customer confirmed the fix", thread=ctx.thread)
            return TurnResult(
                output_text="closed",
                stop_reason=StopReason.CLOSED,
                actions=tuple(actions),
                thread_change=ThreadChange(state=ThreadState.CLOSED),
            )
        reply = f"echo: {text} (after {len(ctx.history)} earlier turn(s))"
        return TurnResult(
            output_text=reply,
            stop_reason=StopReason.END_TURN,
            actions=(PlannedAction(ActionKind.REPLY, text=reply),),
        )


@asynccontextmanager
async def running_app(
    db_url: str,
    fake: FakeIntercom,
    *,
    real_engine: bool = False,
    pipeline: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    **intercom: Any,
) -> AsyncIterator[tuple[Application, ScriptedRunner]]:
    """The daemon with only the Intercom connector and a scripted runner (or the real agent
    engine on the offline provider, or on ``model``), on its real port; ``pipeline``
    overrides settings."""
    runners: list[ScriptedRunner] = []

    async def factory(app: Application) -> ScriptedRunner:
        runners.append(ScriptedRunner(app))
        return runners[-1]

    settings = make_settings(
        db_url,
        intercom=intercom_section(fake, **intercom),
        connectors=["intercom"],
        pipeline=pipeline or {},
        **({"model": model} if model else {}),
    )
    if not db_url.startswith("sqlite"):
        # The daemon migrates embedded SQLite itself; PostgreSQL is migrated by the operator.
        db = Database(settings.database)
        try:
            await upgrade(db.engine)
        finally:
            await db.dispose()
    app = Application(settings, runner_factory=None if real_engine else factory)
    async with app:
        yield app, runners[0] if runners else ScriptedRunner(app)


async def deliver(
    app: Application,
    payload: dict[str, Any] | bytes,
    *,
    secret: str | None = CLIENT_SECRET,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
    parsed: bool = True,
) -> tuple[int, dict[str, Any]]:
    """POST a webhook to the daemon as Intercom would (signed with the client secret). The
    answer comes once the delivery is stored; with ``parsed`` (the default) this returns only
    once every stored delivery was parsed too (its messages are in the inbox)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if signature is not None:
        sent["X-Hub-Signature"] = signature
    elif secret is not None:
        sent["X-Hub-Signature"] = sign(secret.encode(), body)
    url = f"http://127.0.0.1:{app.http_port}/webhooks/intercom"
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=sent) as response:
        try:
            answer = await response.json(content_type=None)
        except (json.JSONDecodeError, aiohttp.ContentTypeError):
            answer = {}
    if parsed and response.status == 200:
        await wait_until(lambda: all_parsed(app), what="the stored deliveries to be parsed")
    return response.status, answer


async def all_parsed(app: Application) -> bool:
    """No stored webhook delivery waits to be parsed."""
    return not (await app.store.deliveries.counts()).get("pending")


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], *, timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


async def settled(app: Application) -> bool:
    """Nothing pending in the inbox or the outbox."""
    inbox = await app.store.inbox_counts()
    outbox = await app.store.outbox_counts()
    return not inbox.get("pending") and not outbox.get("pending")
