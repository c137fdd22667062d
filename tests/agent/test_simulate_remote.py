"""``simulate examples/scenarios.yaml`` against the scripted OpenAI-compatible model server over
real HTTP, with a rule that plays a model: it reads the system prompt's knowledge passages and
the tool results the engine sends back, and calls the same tools a real model would."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from bot.agent.simulate import simulate
from bot.app import launcher
from tests.conftest import make_settings
from tests.fakes.model_server import (
    RecordedRequest,
    ScriptedModelServer,
    ScriptedReply,
    ScriptedToolCall,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios.yaml"
PASSAGE = re.compile(
    r"^\[\d+\] (.+?) — relevance ([0-9.]+)\n(.+?)(?=\n\n\[\d+\] |\Z)", re.MULTILINE | re.DOTALL
)


class SupportModel:
    """Decides each reply from the request, like a well-behaved model."""

    def __init__(self) -> None:
        self.calls = 0

    def _call(self, name: str, arguments: dict[str, Any], text: str = "") -> ScriptedReply:
        self.calls += 1
        return ScriptedReply.calls(
            ScriptedToolCall(name, arguments, id=f"call_{self.calls}"), text=text
        )

    def __call__(self, request: RecordedRequest) -> ScriptedReply:
        messages = request.messages
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        tool_results = [m for m in messages[last_user + 1 :] if m["role"] == "tool"]
        if tool_results:
            info = json.loads(tool_results[-1]["content"])
            return ScriptedReply.say(
                f"Hi {str(info.get('name', 'there')).split()[0]}! How can I help you today?"
            )
        text = request.last_user_text.lower()
        if "solved" in text:
            return self._call(
                "CLOSE",
                {"resolution_summary": "customer confirmed"},
                text="Great — closing this now.",
            )
        if "human" in text:
            return self._call("ESCALATE", {"reason": "asked for a person", "priority": "normal"})
        if text.strip(" !.") in ("hi", "hello"):
            return self._call("USER_INFO_LOOKUP", {})
        system = messages[0]["content"]
        for where, relevance, body in PASSAGE.findall(system):
            if float(relevance) >= 0.35:
                return ScriptedReply.say(f"{body.strip()}\n\nSource: {where}")
        return self._call("ESCALATE", {"reason": "not in the knowledge base", "priority": "low"})


async def test_example_scenarios_pass_against_the_scripted_model_server(sqlite_url: str) -> None:
    model = SupportModel()
    async with ScriptedModelServer(rule=model) as server:
        settings = make_settings(
            sqlite_url,
            model={
                "provider": "openai",
                "base_url": server.url,
                "api_key": "test-key",
                "name": "scripted",
                "fallback": [],
                "timeout_seconds": 10,
            },
        )
        out = io.StringIO()
        code = await simulate(settings, SCENARIOS, out, launch=launcher())

    report = out.getvalue()
    assert code == 0, report
    assert "7/7 scenarios passed" in report
    assert server.unscripted == 0
    chat = server.chat_requests
    # Five scenarios reach the model (the guardrail ones never do); the greeting takes two calls,
    # the close scenario two turns.
    assert len(chat) == 7
    assert all(r.header("Authorization") == "Bearer test-key" for r in chat)
    tools_offered = {t["function"]["name"] for t in chat[0].json["tools"]}
    assert {"USER_INFO_LOOKUP", "ESCALATE", "CLOSE", "REMEMBER"} <= tools_offered
    # The tool result went back as a tool message answering the model's call.
    greeting = next(r for r in chat if any(m["role"] == "tool" for m in r.messages))
    tool_message = next(m for m in greeting.messages if m["role"] == "tool")
    assert tool_message["tool_call_id"].startswith("call_")
    assert json.loads(tool_message["content"])["name"] == "Ada Lovelace"
