"""Fixtures for the agent engine: a scripted in-process model, a fixed knowledge base, a channel
that records what it is asked to do, and an application running the real pipeline."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.agent.conversation import Conversation, LocalConnector
from bot.agent.engine import AgentRunner, make_runner
from bot.app import Application
from bot.domain import JSON, ActionKind, PlannedAction, Smith, Thread, Usage
from bot.knowledge import Passage
from bot.providers.base import DeltaSink, ModelRequest, ModelResponse, ToolCall
from bot.store.database import Database
from bot.store.migrate import upgrade
from tests.conftest import make_settings

Script = ModelResponse | Exception | Callable[[ModelRequest], ModelResponse]


def call(
    name: str, arguments: JSON | None = None, *, raw: str | None = None, id: str = ""
) -> ToolCall:
    """A tool call as a model would send it; ``raw`` (not JSON) makes malformed arguments."""
    if raw is not None:
        return ToolCall(id or f"call_{name}", name, raw, None, error="not valid JSON")
    args = arguments or {}
    return ToolCall(id or f"call_{name}", name, json.dumps(args), args)


def says(text: str) -> ModelResponse:
    return ModelResponse(text=text, usage=Usage(10, 5), model="scripted")


def calls(*tool_calls: ToolCall, text: str = "") -> ModelResponse:
    return ModelResponse(
        text=text,
        tool_calls=tool_calls,
        usage=Usage(10, 5),
        model="scripted",
        finish_reason="tool_calls",
    )


class ScriptedProvider:
    """A model that answers from a queue (then from ``default``), recording every request."""

    name = "scripted"

    def __init__(self, *script: Script, default: Script | None = None):
        self.script: deque[Script] = deque(script)
        self.default = default
        self.requests: list[ModelRequest] = []
        self.closed = False

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        self.requests.append(request)
        step = self.script.popleft() if self.script else self.default
        if step is None:
            raise AssertionError("the scripted model has no reply left")
        if isinstance(step, Exception):
            raise step
        response = step(request) if callable(step) else step
        if response.text and on_delta is not None:
            for piece in (
                response.text[: len(response.text) // 2],
                response.text[len(response.text) // 2 :],
            ):
                await on_delta(piece)
        return response

    async def aclose(self) -> None:
        self.closed = True


def passage(title: str, heading: str, text: str, score: float, source: str = "") -> Passage:
    return Passage(
        chunk_id=f"chk_{title}",
        document_id=f"doc_{title}",
        title=title,
        heading=heading,
        text=text,
        source=source or f"{title.lower().replace(' ', '-')}.md",
        score=score,
    )


class FixedKnowledge:
    """Returns the same passages for every query, and records the queries."""

    def __init__(self, passages: Sequence[Passage] = ()):
        self.passages = list(passages)
        self.queries: list[str] = []

    async def search(self, query: str, *, limit: int = 5) -> list[Passage]:
        self.queries.append(query)
        return self.passages[:limit]


class RecordingConnector(LocalConnector):
    """The ``test`` channel: contact data per smith, and escalation/close actions of its own so
    tests can tell them from the defaults."""

    def __init__(self, contacts: dict[str, JSON] | None = None):
        super().__init__("test")
        self.contacts = contacts or {}

    async def user_info(self, smith: Smith, thread: Thread) -> JSON:
        return dict(self.contacts.get(smith.external_id or "", {}))

    def escalation_actions(
        self, *, reason: str, priority: str, summary: str, thread: Thread
    ) -> list[PlannedAction]:
        return [
            PlannedAction(ActionKind.TAG, tag="escalated"),
            PlannedAction(ActionKind.TAG, tag=f"priority:{priority}"),
            PlannedAction(ActionKind.NOTE, text=f"{reason} | {summary}"),
            PlannedAction(ActionKind.REPLY, text="A person will follow up here."),
        ]


class Harness:
    def __init__(self, app: Application, connector: RecordingConnector, runner: AgentRunner):
        self.app = app
        self.connector = connector
        self.runner = runner

    def customer(
        self, external_id: str, display_name: str | None = None, **profile: Any
    ) -> Conversation:
        return Conversation(
            self.app.daemon,
            self.connector,
            agent_slug="support",
            smith_external_id=external_id,
            display_name=display_name,
            profile=profile,
            turn_timeout=30,
        )


@asynccontextmanager
async def running(
    db_url: str,
    provider: Any,
    *,
    knowledge: Any = None,
    contacts: dict[str, JSON] | None = None,
    remote: bool | None = None,
    configure: Callable[[AgentRunner], None] | None = None,
    **sections: Any,
) -> AsyncIterator[Harness]:
    """The real application (inbox → dispatcher → runner → store → outbox) on ``db_url``, with
    the engine's runner around ``provider``."""
    settings = make_settings(db_url, **sections)
    db = Database(settings.database)
    try:
        await upgrade(db.engine)  # PostgreSQL is never upgraded by the app itself
    finally:
        await db.dispose()
    connector = RecordingConnector(contacts)
    built: list[AgentRunner] = []

    async def factory(app: Application) -> AgentRunner:
        runner = make_runner(
            settings,
            http=app.http,
            provider=provider,
            connectors=app.connectors,
            knowledge=knowledge,
            remote=remote,
        )
        if configure is not None:
            configure(runner)
        built.append(runner)
        return runner

    app = Application(settings, runner_factory=factory, connectors=[connector], serve_http=False)
    await app.start()
    try:
        yield Harness(app, connector, built[0])
    finally:
        await app.stop()


def agent_section(**fields: Any) -> list[JSON]:
    """``agents = [...]`` with the default agent changed."""
    return [{"slug": "support", "name": "Support bot", **fields}]


@pytest.fixture
def knowledge() -> FixedKnowledge:
    return FixedKnowledge(
        [
            passage(
                "Resetting your password",
                "Reset a forgotten password",
                "Click Forgot password? on the sign-in page and follow the email.",
                0.9,
                "account/resetting-your-password.md",
            ),
        ]
    )
