"""The daemon's own runner (``build_runner``): a failing remote model falls back along the
provider chain to the offline responder, which answers from the bundled knowledge base."""

from __future__ import annotations

from bot.agent.conversation import Conversation, LocalConnector
from bot.app import Application
from bot.domain import StopReason

from tests.conftest import make_settings
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply


async def test_a_failing_remote_model_falls_back_to_the_offline_responder(sqlite_url: str) -> None:
    async with ScriptedModelServer(rule=lambda request: ScriptedReply.error(500)) as server:
        settings = make_settings(
            sqlite_url,
            model={"provider": "openai", "base_url": server.url, "api_key": "k", "name": "m",
                   "max_retries": 0, "fallback": ["offline"], "timeout_seconds": 5},
        )
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            customer = Conversation(app, connector, agent_slug="support",
                                    smith_external_id="web:ada", turn_timeout=30)
            outcome = await customer.say("How do I reset my password?")

    assert server.chat_requests, "the remote model was tried first"
    assert outcome.run is not None
    assert outcome.run.stop_reason is StopReason.END_TURN
    assert outcome.run.model == "offline"
    assert "Source: Resetting your password" in outcome.replies[0]
