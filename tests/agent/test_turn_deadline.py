"""One deadline per turn and the model's circuit breaker, through the daemon's own runner
(``build_runner``) with the OpenAI-compatible provider over real HTTP: a hung model or tool
costs the customer ``model.turn_timeout_seconds`` at most, then the offline responder answers;
while the model keeps failing, turns skip it until a trial call after the cool-down succeeds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.agent.conversation import Conversation, LocalConnector
from bot.app import Application
from bot.domain import StopReason
from bot.pipeline.events import TurnEvent
from tests.conftest import make_settings
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply, ScriptedToolCall

DEADLINE = 1.0
QUESTION = "How do I reset my password?"
OFFLINE_ANSWER = "Source: Resetting your password"  # the bundled knowledge base's article


def model_section(server: ScriptedModelServer, **overrides: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "base_url": server.url,
        "api_key": "k",
        "name": "m",
        "max_retries": 0,
        "fallback": ["offline"],
        # The per-call deadline alone would keep a customer waiting this long on each call.
        "timeout_seconds": 30,
        "turn_timeout_seconds": DEADLINE,
        **overrides,
    }


def customer(app: Application, connector: LocalConnector, who: str = "web:ada") -> Conversation:
    # Longer than any deadline here, shorter than the 30 s per-call timeout: a turn that is not
    # cut off at its deadline fails the test instead of passing slowly.
    return Conversation(app.daemon, connector, agent_slug="support", smith_external_id=who, turn_timeout=10)


def breaker_state(app: Application, provider: str = "openai") -> str:
    """The state /metrics shows for ``provider``'s circuit breaker."""
    registry = app.metrics.registry
    states = [
        state
        for state in ("closed", "open", "half_open")
        if registry.get_sample_value(
            "supportbot_model_breaker", {"provider": provider, "supportbot_model_breaker": state}
        )
        == 1.0
    ]
    assert len(states) == 1, f"no single breaker state for {provider}: {states}"
    return states[0]


async def test_a_hung_model_after_a_tool_call_gets_the_fallback_answer_by_the_deadline(
    sqlite_url: str,
) -> None:
    async with ScriptedModelServer() as server:
        server.enqueue(
            ScriptedReply.calls(ScriptedToolCall("USER_INFO_LOOKUP", {}, id="c1")),
            ScriptedReply.hanging(),
        )
        settings = make_settings(sqlite_url, model=model_section(server))
        connector = LocalConnector("sim", contact={"name": "Ada Lovelace", "plan": "pro"})
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            started = time.monotonic()
            outcome = await customer(app, connector).say(QUESTION)
            elapsed = time.monotonic() - started
            await server.wait_abandoned()
            deadlines = app.metrics.registry.get_sample_value("supportbot_turn_deadlines_total")

    # What the issue asks for: the answer within the turn's deadline plus one second.
    assert elapsed < DEADLINE + 1.0, f"the customer waited {elapsed:.2f}s"
    assert len(server.chat_requests) == 2, "the tool ran, then the model hung"
    run = outcome.run
    assert run is not None
    assert [c.name for c in run.tool_calls] == ["USER_INFO_LOOKUP"]
    assert run.tool_calls[0].result is not None and run.tool_calls[0].error is None
    assert len(outcome.replies) == 1 and OFFLINE_ANSWER in outcome.replies[0]
    assert run.stop_reason is StopReason.END_TURN and run.model == "offline"
    assert run.error == "turn deadline of 1s passed; offline answered"
    assert deadlines == 1


async def test_a_hung_tool_gets_the_fallback_answer_by_the_deadline(sqlite_url: str) -> None:
    async with ScriptedModelServer() as server, ScriptedModelServer() as order_service:
        order_service.enqueue(ScriptedReply.hanging())
        server.enqueue(
            ScriptedReply.calls(ScriptedToolCall("ORDER_STATUS", {"order_id": "A42"}, id="c1"))
        )
        settings = make_settings(
            sqlite_url,
            model=model_section(server),
            tools=[
                {
                    "name": "ORDER_STATUS",
                    "description": "Where an order is.",
                    "url": order_service.url + "/chat/completions",
                    "timeout_seconds": 20,
                }
            ],
            agents=[
                {
                    "slug": "support",
                    "name": "Support bot",
                    "tools": ["USER_INFO_LOOKUP", "ESCALATE", "CLOSE", "ORDER_STATUS"],
                }
            ],
        )
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            started = time.monotonic()
            outcome = await customer(app, connector).say(QUESTION)
            elapsed = time.monotonic() - started
            await order_service.wait_abandoned()

    assert elapsed < DEADLINE + 1.0, f"the customer waited {elapsed:.2f}s"
    assert len(server.chat_requests) == 1, "nothing asked the model after the deadline"
    run = outcome.run
    assert run is not None
    assert [(c.name, c.error) for c in run.tool_calls] == [
        ("ORDER_STATUS", "cancelled: the turn ended before the tool finished")
    ]
    assert len(outcome.replies) == 1 and OFFLINE_ANSWER in outcome.replies[0]
    assert run.error == "turn deadline of 1s passed; offline answered"


async def test_without_an_offline_fallback_the_deadline_ends_in_the_apology(
    sqlite_url: str,
) -> None:
    async with ScriptedModelServer(rule=lambda request: ScriptedReply.hanging()) as server:
        settings = make_settings(sqlite_url, model=model_section(server, fallback=[]))
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            outcome = await customer(app, connector).say(QUESTION)

    run = outcome.run
    assert run is not None and run.stop_reason is StopReason.ERROR
    assert run.error == "turn deadline of 1s passed"
    assert outcome.replies and "a person will follow up" in outcome.replies[-1]
    assert outcome.thread.state.value == "escalated"


async def test_with_the_breaker_open_the_next_turn_does_not_call_the_model(
    sqlite_url: str,
) -> None:
    async with ScriptedModelServer(rule=lambda request: ScriptedReply.hanging()) as server:
        settings = make_settings(
            sqlite_url,
            model=model_section(server, breaker_failures=1, breaker_cooldown_seconds=600),
        )
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            assert breaker_state(app) == "closed"
            first = await customer(app, connector, "web:ada").say(QUESTION)
            assert breaker_state(app) == "open"
            asked = len(server.chat_requests)
            second = await customer(app, connector, "web:bob").say(QUESTION)

    assert first.run is not None and first.run.error is not None  # the deadline struck
    assert asked == 1
    assert len(server.chat_requests) == asked, "the open breaker kept the model out of it"
    run = second.run
    assert run is not None
    assert run.error is None, "the second turn did not wait for its deadline"
    assert run.stop_reason is StopReason.END_TURN and run.model == "offline"
    assert len(second.replies) == 1 and OFFLINE_ANSWER in second.replies[0]


async def test_after_the_cool_down_a_successful_trial_closes_the_breaker(sqlite_url: str) -> None:
    cool_down = 0.3
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.error(503), ScriptedReply.error(500))
        settings = make_settings(
            sqlite_url,
            model=model_section(server, breaker_failures=2, breaker_cooldown_seconds=cool_down),
        )
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            ada = customer(app, connector, "web:ada")
            for _ in range(2):
                failed = await ada.say(QUESTION)
                assert failed.run is not None and failed.run.model == "offline"
            assert breaker_state(app) == "open"
            skipped = await ada.say(QUESTION)
            assert len(server.chat_requests) == 2 and breaker_state(app) == "open"

            await asyncio.sleep(cool_down + 0.1)
            server.enqueue(ScriptedReply.say("Use the Forgot password? link."))
            trial = await ada.say(QUESTION)
            assert breaker_state(app) == "closed"
            server.enqueue(ScriptedReply.say("Anything else?"))
            after = await ada.say("Thanks!")

    assert skipped.run is not None and skipped.run.model == "offline"
    assert trial.replies == ["Use the Forgot password? link."]
    assert trial.run is not None and trial.run.model == "openai:scripted-model"
    assert after.replies == ["Anything else?"]
    assert len(server.chat_requests) == 4


async def test_text_streamed_before_the_deadline_is_withdrawn_before_the_fallback_answers(
    sqlite_url: str,
) -> None:
    # A slow model: a few words every 0.3 s, far longer in all (~9 s) than the 3 s deadline,
    # which leaves the first words ample time to arrive on a busy machine.
    slow = ScriptedReply.say(
        "To reset your password, you need to log into your Apple ID account first, then "
        "open the security settings page and follow the steps it shows you there. " * 2,
        chunk_size=10,
        delay_between_chunks=0.3,
    )
    async with ScriptedModelServer() as server:
        server.enqueue(slow)
        settings = make_settings(sqlite_url, model=model_section(server, turn_timeout_seconds=3))
        connector = LocalConnector("sim")
        events: list[tuple[str, str]] = []

        async def hear(event: TurnEvent) -> None:
            events.append((event.name, str(event.data.get("delta", ""))))

        async with Application(settings, connectors=[connector], serve_http=False) as app:
            outcome = await customer(app, connector).say(QUESTION, on_event=hear)

    names = [name for name, _ in events]
    assert names.count("message.reset") == 1, names
    split = names.index("message.reset")
    before = "".join(d for n, d in events[:split] if n == "message.delta")
    after = "".join(d for n, d in events[split:] if n == "message.delta")
    assert before.startswith("To reset your password")
    run = outcome.run
    assert run is not None and run.error is not None and "deadline" in run.error
    assert OFFLINE_ANSWER in run.output_text
    assert after.strip() == run.output_text.strip() == outcome.streamed.strip()
