"""The model ⇄ tools loop through the real dispatcher and store, with a scripted model."""

from __future__ import annotations

import json

from bot.agent.engine import APOLOGY, MAX_LOOPS_REPLY, AgentRunner
from bot.agent.tools import ToolCallContext, ToolError
from bot.domain import JSON, ActionKind, Control, StopReason, ThreadState
from bot.pipeline.events import TurnEvent
from bot.providers.base import ProviderError
from tests.agent.conftest import (
    FixedKnowledge,
    ScriptedProvider,
    agent_section,
    call,
    calls,
    running,
    says,
)


def _order_tool(runner: AgentRunner) -> None:
    registry = runner.tools

    @registry.tool(
        "ORDER_STATUS",
        description="Where an order is.",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]+$"}},
            "required": ["order_id"],
        },
    )
    async def order_status(arguments: JSON, call: ToolCallContext) -> JSON:
        if arguments["order_id"] == "A0":
            raise RuntimeError("database down: password=hunter2")
        if arguments["order_id"] == "A1":
            raise ToolError("no such order")
        return {
            "order_id": arguments["order_id"],
            "status": "shipped",
            "for": call.smith.display_name,
        }


TOOLS = ["USER_INFO_LOOKUP", "ESCALATE", "CLOSE", "ORDER_STATUS"]


async def test_tool_calls_run_in_order_and_results_go_back(
    db_url: str, knowledge: FixedKnowledge
) -> None:
    provider = ScriptedProvider(
        calls(
            call("USER_INFO_LOOKUP", {}, id="c1"),
            call("ORDER_STATUS", {"order_id": "A42"}, id="c2"),
        ),
        says("Hi Ada, order A42 has shipped."),
    )
    async with running(
        db_url,
        provider,
        knowledge=knowledge,
        configure=_order_tool,
        agents=agent_section(tools=TOOLS),
    ) as h:
        events: list[TurnEvent] = []

        async def seen(event: TurnEvent) -> None:
            events.append(event)

        outcome = await h.customer("web:ada", "Ada Lovelace").say("Where is my order A42?", seen)

    run = outcome.run
    assert run is not None
    assert run.stop_reason is StopReason.END_TURN
    assert run.output_text == "Hi Ada, order A42 has shipped."
    assert [(c.seq, c.call_id, c.name) for c in run.tool_calls] == [
        (0, "c1", "USER_INFO_LOOKUP"),
        (1, "c2", "ORDER_STATUS"),
    ]
    assert run.tool_calls[1].result == {
        "order_id": "A42",
        "status": "shipped",
        "for": "Ada Lovelace",
    }
    assert all(c.error is None and c.latency_ms >= 0 for c in run.tool_calls)
    assert run.usage.input_tokens == 20 and run.model == "scripted"
    assert run.input == [{"role": "user", "content": "Where is my order A42?", "attachments": []}]
    assert run.rag_results[0]["source"] == "account/resetting-your-password.md"
    # The second model call saw both results, in order, as tool messages.
    second = provider.requests[1].messages
    assert [m.role for m in second[-3:]] == ["assistant", "tool", "tool"]
    assert [m.tool_call_id for m in second[-2:]] == ["c1", "c2"]
    assert json.loads(second[-1].content)["status"] == "shipped"
    assert [a.kind for a in outcome.actions] == [ActionKind.REPLY]
    names = [e.name for e in events]
    assert names[0] == "run.started" and names[-1] == "run.completed"
    assert (
        names.index("tool.executing") < names.index("tool.completed") < names.index("message.delta")
    )
    executing = [e.data for e in events if e.name == "tool.executing"]
    assert executing[1] == {"name": "ORDER_STATUS", "arguments": {"order_id": "A42"}}
    assert (
        "".join(str(e.data["delta"]) for e in events if e.name == "message.delta")
        == run.output_text
    )


async def test_invalid_arguments_and_failing_tools_go_back_as_tool_errors(db_url: str) -> None:
    provider = ScriptedProvider(
        calls(
            call("ESCALATE", {"priority": "whenever"}, id="bad-schema"),
            call("ORDER_STATUS", raw='{"order_id": "A4', id="bad-json"),
            call("ORDER_STATUS", {"order_id": "A1"}, id="tool-error"),
            call("ORDER_STATUS", {"order_id": "A0"}, id="tool-crash"),
            call("DELETE_EVERYTHING", {}, id="unknown"),
        ),
        says("Sorry, I could not look that up."),
    )
    async with running(
        db_url, provider, configure=_order_tool, agents=agent_section(tools=TOOLS)
    ) as h:
        outcome = await h.customer("web:ada").say("order?")

    run = outcome.run
    assert run is not None and run.stop_reason is StopReason.END_TURN
    errors = {c.call_id: c.error for c in run.tool_calls}
    assert errors["bad-schema"] is not None and "reason" in errors["bad-schema"]
    assert "whenever" in errors["bad-schema"]
    assert errors["bad-json"] is not None and "invalid arguments" in errors["bad-json"]
    assert errors["tool-error"] == "no such order"
    assert errors["tool-crash"] == "the tool failed: RuntimeError"  # no internals leak
    assert errors["unknown"] is not None and "not available" in errors["unknown"]
    assert run.tool_calls[1].arguments == {"_raw": '{"order_id": "A4'}
    fed_back = [json.loads(m.content) for m in provider.requests[1].messages if m.role == "tool"]
    assert [set(f) for f in fed_back] == [{"error"}] * 5
    assert "hunter2" not in json.dumps(fed_back)
    # The invalid ESCALATE did nothing.
    assert outcome.thread.state is ThreadState.OPEN and outcome.thread.control is Control.BOT


async def test_max_tool_loops_ends_with_a_safe_fallback(db_url: str) -> None:
    provider = ScriptedProvider(default=calls(call("USER_INFO_LOOKUP", {})))
    async with running(db_url, provider, agents=agent_section(max_tool_loops=3)) as h:
        outcome = await h.customer("web:ada").say("loop forever")

    run = outcome.run
    assert run is not None
    assert len(provider.requests) == 3
    assert run.stop_reason is StopReason.MAX_TOOL_LOOPS
    assert run.output_text == MAX_LOOPS_REPLY
    assert len(run.tool_calls) == 3
    assert outcome.replies == [MAX_LOOPS_REPLY]


async def test_end_state_tool_ends_the_turn_and_skips_later_calls(db_url: str) -> None:
    provider = ScriptedProvider(
        calls(
            call("CLOSE", {"resolution_summary": "password reset"}, id="close"),
            call("USER_INFO_LOOKUP", {}, id="later"),
            text="Glad it works now!",
        ),
    )
    async with running(db_url, provider) as h:
        outcome = await h.customer("web:ada").say("it works, thanks")

    run = outcome.run
    assert run is not None and run.stop_reason is StopReason.CLOSED
    assert [c.call_id for c in run.tool_calls] == ["close"]
    assert len(provider.requests) == 1
    assert [a.kind for a in outcome.actions] == [
        ActionKind.REPLY,
        ActionKind.NOTE,
        ActionKind.CLOSE,
    ]
    assert outcome.actions[0].text == "Glad it works now!"
    assert outcome.actions[1].text == "Resolved: password reset"
    assert outcome.thread.state is ThreadState.CLOSED


async def test_every_provider_failing_apologises_and_escalates(db_url: str) -> None:
    provider = ScriptedProvider(ProviderError("upstream 503 after retries", retryable=True))
    async with running(db_url, provider) as h:
        outcome = await h.customer("web:ada").say("help")

    run = outcome.run
    assert run is not None
    assert run.stop_reason is StopReason.ERROR
    assert run.error is not None and "upstream 503" in run.error
    assert outcome.replies == [APOLOGY]
    kinds = [a.kind for a in outcome.actions]
    assert ActionKind.NOTE in kinds and kinds.count(ActionKind.REPLY) == 1
    assert outcome.thread.state is ThreadState.ESCALATED
    assert outcome.thread.control is Control.HUMAN


async def test_context_fills_variables_history_and_passages(db_url: str) -> None:
    instructions = (
        "You help {display_name} ({customer_id}) of {company} on the {plan} plan; "
        '{metadata.plan}; {unknown_thing} stays; JSON {"a": 1} too.'
    )
    provider = ScriptedProvider(says("first answer"), says("second answer"))
    knowledge = FixedKnowledge([])
    async with running(
        db_url,
        provider,
        knowledge=knowledge,
        agents=agent_section(instructions=instructions, variables={"company": "Initech"}),
    ) as h:
        customer = h.customer("web:bob", "Bob Smith", plan="pro", company="Evil Corp")
        await customer.say("first question")
        await customer.say("second question")

    system = provider.requests[1].messages[0]
    assert system.role == "system"
    assert system.content.startswith(
        "You help Bob Smith (unknown) of Initech on the pro plan; pro; {unknown_thing} stays; "
        'JSON {"a": 1} too.'
    )
    assert "No knowledge passage matched" in system.content
    roles = [(m.role, m.content) for m in provider.requests[1].messages[1:]]
    assert roles == [
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second question"),
    ]
    assert knowledge.queries == ["first question", "second question"]


async def test_the_model_request_names_the_customer_and_thread_it_serves(db_url: str) -> None:
    # Stateful providers (Ingram) upsert the customer on smith_key: it must be the customer's
    # own namespaced id, so anon: visitors stay recognisable as such on the other side.
    provider = ScriptedProvider(default=says("hello"))
    async with running(db_url, provider) as h:
        outcome = await h.customer("anon:visitor-7").say("hi there")
    run = outcome.run
    assert run is not None
    [request] = provider.requests
    assert request.smith_key == "anon:visitor-7"
    assert request.thread_key == run.thread_id
