"""``examples/scenarios.yaml`` passes with the ``openai`` provider against the scripted
OpenAI-compatible server over real HTTP — the server's answers decided by the offline
responder through ``answer_with``, so the same expectations hold."""

from __future__ import annotations

import io
from pathlib import Path

from bot.agent.simulate import simulate
from bot.app import launcher
from bot.config import DatabaseSettings, Settings
from bot.knowledge import KnowledgeBase
from bot.providers.offline import OfflineProvider
from bot.store.database import Database
from bot.store.migrate import upgrade
from tests.fakes.model_server import ScriptedModelServer, answer_with

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios.yaml"


async def test_scenarios_pass_through_the_openai_provider(tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}"))
    try:
        await upgrade(db.engine)
        defaults = Settings()
        knowledge = KnowledgeBase(db, defaults.knowledge)
        await knowledge.ingest(defaults.knowledge.paths)
        decider = OfflineProvider(defaults.offline, knowledge)
        async with ScriptedModelServer(rule=answer_with(decider)) as server:
            settings = Settings.model_validate(
                {
                    "model": {
                        "provider": "openai",
                        "base_url": server.url,
                        "api_key": "test-key",
                        "name": "scripted",
                        "fallback": [],
                    },
                    "log": {"format": "text"},
                }
            )
            out = io.StringIO()
            code = await simulate(settings, SCENARIOS, out, launch=launcher())
    finally:
        await db.dispose()
    report = out.getvalue()
    assert code == 0, report
    assert "scenarios passed" in report
    assert server.unscripted == 0
    # every model call went over HTTP: tool calls and their results included
    tool_results = [m for r in server.chat_requests for m in r.messages if m["role"] == "tool"]
    assert tool_results, "no tool result went back to the model"
    assert all(r.json["stream"] is True for r in server.chat_requests)
