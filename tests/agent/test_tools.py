"""Built-in and configured tools: USER_INFO_LOOKUP isolation, ESCALATE/CLOSE through the real
dispatcher and store, HTTP tools from config over real HTTP, and registry rules."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot.agent.builtin_tools import NOT_THE_CURRENT_CUSTOMER
from bot.agent.tools import Tool, ToolRegistry
from bot.domain import ActionKind, Control, StopReason, ThreadState
from bot.providers.base import ModelRequest, ModelResponse
from tests.agent.conftest import ScriptedProvider, agent_section, call, calls, running, says

CONTACTS = {
    "intercom:alice": {"email": "alice@example.com", "name": "Alice A.", "plan": "pro"},
    "intercom:bob": {"email": "bob@example.com", "name": "Bob B.", "plan": "enterprise"},
}


class _Service:
    """A tiny HTTP service on 127.0.0.1 that records requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append(
            {
                "method": request.method,
                "path": request.raw_path.split("?")[0],
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": json.loads(body) if body else None,
            }
        )
        if request.path.startswith("/slow"):
            await asyncio.sleep(1)
        if request.path.startswith("/fail"):
            return web.json_response({"error": "boom"}, status=503)
        return web.json_response({"ok": True, "path": request.raw_path.split("?")[0]})


@pytest.fixture
async def service() -> AsyncIterator[_Service]:
    svc = _Service()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", svc.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    svc.url = f"http://127.0.0.1:{port}"
    try:
        yield svc
    finally:
        await runner.cleanup()


def _lookup_then_answer(user_id: str) -> ScriptedProvider:
    return ScriptedProvider(calls(call("USER_INFO_LOOKUP", {"user_id": user_id})), says("done"))


async def test_user_info_lookup_returns_only_the_current_customer(db_url: str) -> None:
    asked = [
        "intercom:bob",
        "bob",
        "bob@example.com",
        "BOB@EXAMPLE.COM",  # someone else
        "intercom:alice",
        "alice",
        "Alice@Example.com",
        "",  # herself
    ]
    provider = ScriptedProvider()
    for user_id in asked:
        provider.script.extend([calls(call("USER_INFO_LOOKUP", {"user_id": user_id})), says("ok")])
    async with running(db_url, provider, contacts=CONTACTS) as h:
        bob = h.customer("intercom:bob", "Bob Builder", customer_id_hint="acme")
        await bob.open_thread()  # Bob exists in the same agent, with his own data
        alice = h.customer("intercom:alice", "Alice Liddell")
        results = []
        for _ in asked:
            outcome = await alice.say("who am I?")
            assert outcome.run is not None
            results.append(outcome.run.tool_calls[0].result)

    for result in results[:4]:
        assert result == NOT_THE_CURRENT_CUSTOMER
        assert "bob" not in json.dumps(result).lower()
    for result in results[4:]:
        assert result["found"] is True
        assert result["user_id"] == "intercom:alice"
        assert result["name"] == "Alice Liddell"
        assert result["contact"] == CONTACTS["intercom:alice"]
        assert "bob" not in json.dumps(result).lower()


async def test_user_info_lookup_asks_the_team_service_for_the_current_customer(
    db_url: str, service: _Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_USER_TOKEN", "s3cret-token")
    provider = _lookup_then_answer("someone-else")
    provider.script.extend([calls(call("USER_INFO_LOOKUP", {})), says("ok")])
    async with running(
        db_url,
        provider,
        contacts=CONTACTS,
        user_info={
            "url": service.url + "/users/{external_id_local}?full={external_id}",
            "headers_from_env": {"Authorization": "TEAM_USER_TOKEN"},
        },
    ) as h:
        alice = h.customer("intercom:alice", "Alice")
        first = await alice.say("who is someone-else?")
        second = await alice.say("who am I?")

    assert first.run is not None and first.run.tool_calls[0].result == NOT_THE_CURRENT_CUSTOMER
    assert second.run is not None
    account = second.run.tool_calls[0].result["account"]
    assert account == {"ok": True, "path": "/users/alice"}
    # Only the current customer's lookup reached the service, with the token from the env var.
    assert len(service.requests) == 1
    assert service.requests[0]["query"] == {"full": "intercom:alice"}
    assert service.requests[0]["headers"]["Authorization"] == "s3cret-token"
    assert "s3cret-token" not in json.dumps(second.run.tool_calls[0].result)


async def test_escalate_records_channel_actions_and_hands_the_thread_to_a_human(
    db_url: str,
) -> None:
    provider = ScriptedProvider(
        calls(call("ESCALATE", {"reason": "refund over limit", "priority": "high"})),
    )
    async with running(db_url, provider) as h:
        customer = h.customer("web:carol", "Carol")
        outcome = await customer.say("I need a refund of $5000 for invoice 77")
        again = await customer.say("hello? anyone?")
        runs = await h.app.store.thread_runs(outcome.thread.id)

    run = outcome.run
    assert run is not None and run.stop_reason is StopReason.ESCALATED
    assert [(a.kind, a.tag) for a in outcome.actions[:2]] == [
        (ActionKind.TAG, "escalated"),
        (ActionKind.TAG, "priority:high"),
    ]
    note = outcome.actions[2].text or ""
    assert note.startswith("refund over limit | ") and "invoice 77" in note
    assert outcome.replies == ["A person will follow up here."]
    assert outcome.thread.state is ThreadState.ESCALATED
    assert outcome.thread.control is Control.HUMAN
    # The bot stays out of a thread a human now owns.
    assert again.run is None and len(runs) == 1
    assert len(provider.requests) == 1


async def test_close_records_actions_and_closes_the_thread(db_url: str) -> None:
    provider = ScriptedProvider(
        says("Try the reset link."),
        calls(call("CLOSE", {"resolution_summary": "reset link worked"})),
        says("Welcome back!"),
    )
    async with running(db_url, provider) as h:
        customer = h.customer("web:dan")
        await customer.say("can't sign in")
        closed = await customer.say("that worked")
        reopened = await customer.say("one more thing")

    assert closed.run is not None and closed.run.stop_reason is StopReason.CLOSED
    assert [(a.kind, a.text) for a in closed.actions] == [
        (ActionKind.NOTE, "Resolved: reset link worked"),
        (ActionKind.CLOSE, None),
    ]
    assert closed.thread.state is ThreadState.CLOSED
    assert reopened.thread.state is ThreadState.OPEN  # the customer wrote again


async def test_a_channel_without_connector_gets_the_default_actions(db_url: str) -> None:
    provider = ScriptedProvider(calls(call("ESCALATE", {"reason": "stuck"})))
    async with running(db_url, provider) as h:
        h.app.connectors.pop("test")  # the thread's channel has no connector any more
        outcome = await h.customer("web:erin").say("help")

    assert outcome.run is not None and outcome.run.stop_reason is StopReason.ESCALATED
    planned = [(a.kind, a.text) for a in outcome.actions]
    assert planned[0][0] is ActionKind.NOTE and "Escalated (normal): stuck" in (planned[0][1] or "")
    assert planned[1] == (
        ActionKind.REPLY,
        "I've passed this to our support team; a person will follow up here shortly.",
    )


async def test_configured_http_tool_validates_then_calls(
    db_url: str, service: _Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_TOKEN", "tok-123")
    tools = [
        {
            "name": "ORDER_STATUS",
            "description": "Look up an order",
            "method": "GET",
            "url": service.url + "/orders/{order_id}",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
                "required": ["order_id"],
                "additionalProperties": False,
            },
            "headers": {"X-Team": "support"},
            "headers_from_env": {"Authorization": "ORDERS_TOKEN"},
            "timeout_seconds": 0.5,
        },
        {
            "name": "REFUND",
            "description": "Refund",
            "url": service.url + "/fail/refund",
            "parameters": {"type": "object", "properties": {"amount": {"type": "number"}}},
        },
        {
            "name": "SLOW",
            "description": "Slow",
            "url": service.url + "/slow",
            "timeout_seconds": 0.2,
        },
        {
            "name": "UNSET",
            "description": "Needs a token",
            "url": service.url + "/unset",
            "headers_from_env": {"Authorization": "NOT_SET_ANYWHERE"},
        },
    ]
    provider = ScriptedProvider(
        calls(
            call("ORDER_STATUS", {"order": 7}, id="invalid"),
            call("ORDER_STATUS", {"order_id": "A/7", "verbose": True}, id="good"),
            call("REFUND", {"amount": 10}, id="http-error"),
            call("SLOW", {}, id="timeout"),
            call("UNSET", {}, id="unset"),
        ),
        says("checked"),
    )
    async with running(
        db_url,
        provider,
        tools=tools,
        agents=agent_section(tools=["ORDER_STATUS", "REFUND", "SLOW", "UNSET"]),
    ) as h:
        outcome = await h.customer("web:fay").say("where is A/7?")

    run = outcome.run
    assert run is not None and run.stop_reason is StopReason.END_TURN
    by_id = {c.call_id: c for c in run.tool_calls}
    assert by_id["invalid"].error is not None and "order_id" in by_id["invalid"].error
    assert by_id["good"].result == {"ok": True, "path": "/orders/A%2F7"}
    assert by_id["http-error"].error is not None and "503" in by_id["http-error"].error
    assert by_id["timeout"].error is not None and "0.2s" in by_id["timeout"].error
    assert by_id["unset"].error == "the tool is not configured on this server"
    paths = [r["path"] for r in service.requests]
    assert "/unset" not in paths and paths.count("/orders/A%2F7") == 1  # invalid args never sent
    sent = next(r for r in service.requests if r["path"] == "/orders/A%2F7")
    assert sent["query"] == {"verbose": "true"}
    assert sent["headers"]["Authorization"] == "tok-123" and sent["headers"]["X-Team"] == "support"
    refund = next(r for r in service.requests if r["path"] == "/fail/refund")
    assert refund["method"] == "POST" and refund["body"] == {"amount": 10}


async def test_a_configured_tool_fetches_the_sessions_own_customer_whatever_the_model_says(
    db_url: str, service: _Service
) -> None:
    tools = [
        {
            "name": "ORDERS",
            "description": "The customer's orders",
            "method": "GET",
            "url": service.url + "/customers/{smith.customer_id}/orders"
                                 "?email={smith.metadata.email}",
            "parameters": {"type": "object", "properties": {"status": {"type": "string"}}},
            "headers": {"X-Customer": "{smith.customer_id}"},
        },
        {
            "name": "TICKET",
            "description": "Open a ticket for the customer",
            "url": service.url + "/tickets",
            "parameters": {"type": "object", "properties": {"subject": {"type": "string"}}},
            "body": {"customer": "{smith.customer_id}", "who": {"id": "{smith.external_id}"}},
        },
    ]
    victim = {"customer_id": "cus_victim", "smith.customer_id": "cus_victim",
              "smith": "cus_victim", "email": "victim@example.com", "customer": "cus_victim",
              "who": "cus_victim"}
    provider = ScriptedProvider(
        calls(
            call("ORDERS", {"status": "open", **victim}, id="orders"),
            call("ORDERS", {"status": "{smith.customer_id}"}, id="literal"),
            call("TICKET", {"subject": "refund", **victim}, id="ticket"),
        ),
        says("checked"),
    )
    async with running(db_url, provider, tools=tools,
                       agents=agent_section(tools=["ORDERS", "TICKET"])) as h:
        agent = await h.app.store.get_agent("support")
        await h.app.store.ensure_smith("web:fay", agent.id, customer_id="cus_fay",
                                       metadata={"email": "fay@example.com"})
        outcome = await h.customer("web:fay").say("show me cus_victim's orders")

    assert outcome.run is not None
    assert all(c.error is None for c in outcome.run.tool_calls), outcome.run.tool_calls
    orders, literal, ticket = service.requests
    assert orders["path"] == "/customers/cus_fay/orders"
    assert orders["query"] == {"email": "fay@example.com", "status": "open"}
    assert orders["headers"]["X-Customer"] == "cus_fay"
    # An argument that looks like a smith field is sent as written, never expanded.
    assert literal["query"] == {"email": "fay@example.com", "status": "{smith.customer_id}"}
    assert ticket["body"] == {"subject": "refund", "customer": "cus_fay",
                              "who": {"id": "web:fay"}}
    assert "cus_victim" not in json.dumps(service.requests)


async def test_a_tool_needing_a_customer_id_the_smith_lacks_is_not_called(
    db_url: str, service: _Service
) -> None:
    tools = [{"name": "ORDERS", "description": "Orders", "method": "GET",
              "url": service.url + "/customers/{smith.customer_id}/orders"}]
    provider = ScriptedProvider(calls(call("ORDERS", {}, id="orders")), says("ok"))
    async with running(db_url, provider, tools=tools,
                       agents=agent_section(tools=["ORDERS"])) as h:
        outcome = await h.customer("anon:visitor-without-customer").say("my orders?")
    assert outcome.run is not None
    error = outcome.run.tool_calls[0].error
    assert error is not None and "customer_id" in error
    assert service.requests == []  # "/customers//orders" could have listed everyone's


@pytest.mark.parametrize(
    ("tool", "complaint"),
    [
        ({"url": "http://127.0.0.1/c/{smith.customer_id}",
          "parameters": {"type": "object", "properties": {"customer_id": {"type": "string"}}}},
         "customer_id"),
        ({"url": "http://127.0.0.1/c/{smith.metadata.email}",
          "parameters": {"type": "object", "properties": {"email": {"type": "string"}}}},
         "email"),
        ({"url": "http://127.0.0.1/c?owner={smith.external_id}",
          "parameters": {"type": "object", "properties": {"owner": {"type": "string"}}}},
         "owner"),
        ({"url": "http://127.0.0.1/c", "body": {"account": "{smith.customer_id}"},
          "parameters": {"type": "object", "properties": {"account": {"type": "string"}}}},
         "account"),
        ({"url": "http://127.0.0.1/c",
          "parameters": {"type": "object", "properties": {"smith.customer_id": {}}}},
         "smith"),
        ({"url": "http://127.0.0.1/c/{customer_id}"}, "customer_id"),
        ({"url": "http://127.0.0.1/c/{smith.password}"}, "smith.password"),
        ({"url": "http://127.0.0.1/c", "headers": {"X-Customer": "{customer}"},
          "parameters": {"type": "object", "properties": {"customer": {"type": "string"}}}},
         "headers and body"),
        ({"url": "http://127.0.0.1/c", "method": "GET", "body": {"a": "{smith.id}"}},
         "GET sends no body"),
    ],
)
def test_tool_config_keeps_customer_fields_away_from_the_model(
    tool: dict[str, Any], complaint: str
) -> None:
    from pydantic import ValidationError

    from bot.config import Settings

    with pytest.raises(ValidationError, match=re.escape(complaint)):
        Settings.model_validate({"tools": [{"name": "T", "description": "x", **tool}]})


def test_user_info_url_takes_smith_fields_only() -> None:
    from pydantic import ValidationError

    from bot.config import Settings

    Settings.model_validate({"user_info": {"url": "http://u/{customer_id}/{smith.metadata.email}"}})
    with pytest.raises(ValidationError, match="user_id"):
        Settings.model_validate({"user_info": {"url": "http://u/{user_id}"}})


async def test_registry_rules() -> None:
    registry = ToolRegistry()

    @registry.tool("PING", description="ping")
    async def ping(arguments: dict[str, Any], call: Any) -> str:
        return "pong"

    with pytest.raises(ValueError, match="already registered"):
        registry.add(Tool("PING", "again", {"type": "object"}, ping))

    def sync_tool(arguments: dict[str, Any], call: Any) -> str:
        return "no"

    with pytest.raises(TypeError, match="async"):
        registry.add(Tool("SYNC", "sync", {"type": "object"}, sync_tool))  # type: ignore[arg-type]
    assert registry.names() == ["PING"]
    assert [t.name for t in registry.offered(["NOPE", "PING"])] == ["PING"]


async def test_built_in_tool_schemas_are_valid_json_schema() -> None:
    """The registry checks a schema at the tool's first call (a start imports no jsonschema
    before its first turn); the built-in tools' schemas are checked here instead."""
    import aiohttp
    from jsonschema import Draft202012Validator

    from bot.agent.builtin_tools import register_builtin_tools
    from bot.config import UserInfoSettings

    registry = ToolRegistry()
    async with aiohttp.ClientSession() as client:
        register_builtin_tools(registry, user_info=UserInfoSettings(), client=client)
    assert len(registry.names()) >= 4
    for name in registry.names():
        tool = registry.get(name)
        assert tool is not None
        Draft202012Validator.check_schema(tool.parameters)
        assert isinstance(registry.validation_errors(name, {}), list)


async def test_a_broken_schema_is_refused_at_the_tools_first_call() -> None:
    from jsonschema.exceptions import SchemaError

    registry = ToolRegistry()

    @registry.tool("BROKEN", description="b", parameters={"type": "no such type"})
    async def broken(arguments: dict[str, Any], call: Any) -> str:
        return "never"

    with pytest.raises(SchemaError):
        registry.validation_errors("BROKEN", {})


async def test_tools_offered_follow_the_agent_list(db_url: str) -> None:
    seen: list[ModelRequest] = []

    def answer(request: ModelRequest) -> ModelResponse:
        seen.append(request)
        return ModelResponse(text="ok")

    provider = ScriptedProvider(default=answer)
    async with running(db_url, provider, agents=agent_section(tools=["ESCALATE"])) as h:
        await h.customer("anon:visitor").say("hi")
        await h.customer("web:known").say("hi")

    assert [t.name for t in seen[0].tools] == ["ESCALATE"]
    assert [t.name for t in seen[1].tools] == ["ESCALATE", "REMEMBER"]


@pytest.mark.parametrize(
    "tool",
    [
        {
            "name": "BAD",
            "description": "x",
            "url": "http://127.0.0.1/",
            "parameters": {"type": "array"},
        },
        {
            "name": "BAD",
            "description": "x",
            "url": "http://127.0.0.1/",
            "parameters": {"type": "object", "properties": {"a": {"type": "nonsense"}}},
        },
        {"name": "has space", "description": "x", "url": "http://127.0.0.1/"},
        {"name": "BAD", "description": "x", "url": "http://127.0.0.1/", "method": "TRACE"},
    ],
)
def test_configured_tools_are_checked_when_settings_load(tool: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from bot.config import Settings

    with pytest.raises(ValidationError):
        Settings.model_validate({"tools": [tool]})
