"""A running daemon with the web connector on an ephemeral port, and browser-like HTTP clients.

The turn runner is scripted (deterministic text, deltas, a tool call, passages) unless a test
asks for the real engine. Clients keep cookies like a browser does (the jar accepts them from
127.0.0.1).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.app import Application
from bot.domain import Control, StopReason, ThreadState, ToolCallRecord
from bot.pipeline.events import TurnEvent
from bot.pipeline.turn import TurnContext, TurnResult
from bot.store.migrate import upgrade
from bot.store.store import ThreadChange
from tests.conftest import make_settings

ADMIN = "admin-token-for-tests"
SECRET = "identity-secret-for-tests-at-least-32-bytes"

PASSAGE = {
    "chunk_id": 7,
    "document_id": "doc_1",
    "title": "Resetting your password",
    "heading": "Reset from the sign-in page",
    "source": "account/resetting-your-password.md",
    "score": 0.91,
    "text": "Open the sign-in page and choose Forgot password.",
}
ANSWER_PARTS = ("Choose ", "Forgot password on the sign-in page. ",
                "Source: Resetting your password (account/resetting-your-password.md)")


@dataclass
class ScriptedEngine:
    """Streams a fixed answer with one tool call; escalates when asked for a human."""

    turns: list[TurnContext] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def run(self, ctx: TurnContext) -> TurnResult:
        self.turns.append(ctx)
        if self.gate is not None:
            await self.gate.wait()
        if "human" in ctx.user_text.lower():
            return TurnResult(
                output_text="I've passed this to our support team; a person will follow up.",
                stop_reason=StopReason.ESCALATED,
                thread_change=ThreadChange(state=ThreadState.ESCALATED, control=Control.HUMAN),
                model="scripted",
            )
        await ctx.emit(TurnEvent("tool.executing", ctx.run_id, ctx.thread.id,
                                 {"name": "USER_INFO_LOOKUP", "call_id": "call_1"}))
        await ctx.emit(TurnEvent("tool.completed", ctx.run_id, ctx.thread.id,
                                 {"name": "USER_INFO_LOOKUP", "call_id": "call_1"}))
        for part in ANSWER_PARTS:
            await ctx.emit(TurnEvent("message.delta", ctx.run_id, ctx.thread.id, {"delta": part}))
        return TurnResult(
            output_text="".join(ANSWER_PARTS),
            stop_reason=StopReason.END_TURN,
            tool_calls=(ToolCallRecord(0, "call_1", "USER_INFO_LOOKUP", {"user_id": "x"},
                                       result={"name": None}, latency_ms=1.0),),
            rag_results=(PASSAGE,),
            model="scripted",
        )


@dataclass
class Daemon:
    app: Application
    engine: ScriptedEngine | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app.http_port}"

    def client(self, **headers: str) -> aiohttp.ClientSession:
        """A browser-like client: its own cookie jar."""
        return aiohttp.ClientSession(
            base_url=self.url, cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers
        )

    def admin(self, smith_id: str | None = None) -> aiohttp.ClientSession:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        if smith_id:
            headers["X-Smith-Id"] = smith_id
        return aiohttp.ClientSession(base_url=self.url, headers=headers)


@asynccontextmanager
async def running(db_url: str, *, real_engine: bool = False, **sections: Any
                  ) -> AsyncIterator[Daemon]:
    settings_sections: dict[str, Any] = {
        "connectors": ["web"],
        "admin": {"token": ADMIN},
        "web": {"identity_secret": SECRET},
        "http": {"host": "127.0.0.1", "port": 0},
    }
    settings_sections.update(sections)
    settings = make_settings(db_url, **settings_sections)
    engine = None if real_engine else ScriptedEngine()

    async def factory(app: Application) -> Any:
        return engine

    app = Application(settings, runner_factory=None if real_engine else factory)
    await upgrade(app.db.engine)  # PostgreSQL is never migrated by the daemon itself
    await app.start()
    try:
        yield Daemon(app, engine)
    finally:
        await app.stop()


async def session(client: aiohttp.ClientSession, **body: Any) -> dict[str, Any]:
    async with client.post("/web/session", json=body) as response:
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


async def json_call(client: aiohttp.ClientSession, method: str, path: str,
                    expect: int = 200, **kwargs: Any) -> Any:
    async with client.request(method, path, **kwargs) as response:
        text = await response.text()
        assert response.status == expect, f"{method} {path}: {response.status} {text}"
        return json.loads(text) if text else None


async def read_sse(response: aiohttp.ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    """Every ``event:``/``data:`` frame of an SSE response, in order."""
    frames: list[tuple[str, dict[str, Any]]] = []
    buffer = ""
    async for chunk in response.content.iter_any():
        buffer += chunk.decode()
        while "\n\n" in buffer:
            frame, buffer = buffer.split("\n\n", 1)
            name, data = "message", ""
            for line in frame.split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
            if data:
                frames.append((name, json.loads(data)))
    return frames


async def ask(client: aiohttp.ClientSession, conversation_id: str, text: str,
              **extra: Any) -> dict[str, Any]:
    """Send a message and wait for the one JSON answer."""
    result: dict[str, Any] = await json_call(
        client, "POST", f"/v1/conversations/{conversation_id}/messages",
        json={"content": text, "stream": False, **extra},
    )
    return result
