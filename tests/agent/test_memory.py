"""Memory: REMEMBER stores durable facts on the smith; later threads of that smith, and only
that smith, get them; anonymous visitors get no memory tool."""

from __future__ import annotations

from bot.domain import StopReason
from bot.providers.base import ModelRequest, ModelResponse
from tests.agent.conftest import ScriptedProvider, call, calls, running


def _remember_when_told(request: ModelRequest) -> ModelResponse:
    last = request.messages[-1]
    if last.role == "user" and last.content.startswith("remember: "):
        fact = last.content.removeprefix("remember: ")
        return ModelResponse(text="", tool_calls=(call("REMEMBER", {"fact": fact}),))
    return ModelResponse(text="ok")


async def test_memories_reach_later_threads_of_the_same_smith_only(db_url: str) -> None:
    provider = ScriptedProvider(default=_remember_when_told)
    async with running(db_url, provider) as h:
        alice = h.customer("web:alice", "Alice")
        bob = h.customer("web:bob", "Bob")
        stored = await alice.say("remember: Alice runs the Team plan on eu-west")
        await bob.say("remember: Bob prefers French")

        await alice.open_thread()
        await alice.say("new question from Alice")
        await bob.open_thread()
        await bob.say("new question from Bob")
        alice_smith = await h.app.store.find_smith("web:alice", stored.thread.agent_id)
        assert alice_smith is not None
        alice_facts = await h.app.store.memories(alice_smith.id)

    assert stored.run is not None and stored.run.tool_calls[0].result == {"remembered": True}
    assert stored.run.stop_reason is StopReason.END_TURN
    assert alice_facts == ["Alice runs the Team plan on eu-west"]
    systems = {
        r.messages[-1].content: r.messages[0].content
        for r in provider.requests
        if r.messages[-1].role == "user"
    }
    alice_system = systems["new question from Alice"]
    bob_system = systems["new question from Bob"]
    assert "Alice runs the Team plan on eu-west" in alice_system
    assert "Bob prefers French" not in alice_system
    assert "Bob prefers French" in bob_system
    assert "Alice runs the Team plan" not in bob_system


async def test_anonymous_visitors_get_no_memory(db_url: str) -> None:
    provider = ScriptedProvider(
        calls(call("REMEMBER", {"fact": "visitor likes cats"})),
        ModelResponse(text="ok"),
        default=ModelResponse(text="ok"),
    )
    async with running(db_url, provider) as h:
        visitor = h.customer("anon:9f2c7b1e")
        outcome = await visitor.say("remember: visitor likes cats")
        await visitor.open_thread()
        await visitor.say("again")

    assert [t.name for t in provider.requests[0].tools] == ["USER_INFO_LOOKUP", "ESCALATE", "CLOSE"]
    assert outcome.run is not None
    assert outcome.run.tool_calls[0].error is not None  # not offered, so refused
    assert all("visitor likes cats" not in r.messages[0].content for r in provider.requests)
