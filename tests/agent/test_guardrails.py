"""Guardrails: input rules (keywords, regex, model-judged), PII redaction for remote models
(cards checked with Luhn), and the output rule."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from bot.agent.guardrails import Guardrails, luhn_valid
from bot.domain import Control, StopReason, ThreadState
from bot.providers.base import ModelRequest, ModelResponse
from tests.agent.conftest import ScriptedProvider, agent_section, call, calls, running, says

RULES = {
    "input": [
        {
            "name": "threats",
            "keywords": ["bomb", "burn it down"],
            "action": "escalate",
            "priority": "urgent",
            "triggered_text": "A person will look at this right away.",
        },
        {
            "name": "password",
            "patterns": [r"\bmy password is\b"],
            "triggered_text": "Please never share your password.",
        },
    ]
}


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("5500005555555559")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("41111x11")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 please", "card [card number] please"),
        ("card 4111-1111-1111-1111.", "card [card number]."),
        ("not a card 4111 1111 1111 1112", "not a card 4111 1111 1111 1112"),
        ("mail ada.l+x@mail.example.co.uk now", "mail [email] now"),
        ("call +44 20 7946 0958 or (555) 123-4567", "call [phone] or [phone]"),
        ("order 123456 on 2026-01-05 for $1299.00", "order 123456 on 2026-01-05 for $1299.00"),
    ],
)
def test_redaction(text: str, expected: str) -> None:
    assert Guardrails().redact(text) == expected


def test_only_a_text_that_may_hold_a_number_or_an_address_is_scanned_for_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.agent import guardrails

    scanned: list[str] = []

    class Spy:
        def __init__(self, name: str, pattern: re.Pattern[str]):
            self.name, self.pattern = name, pattern

        def sub(self, repl: Any, text: str) -> str:
            scanned.append(self.name)
            return self.pattern.sub(repl, text)

    for name in ("_EMAIL", "_CARD", "_PHONE"):
        monkeypatch.setattr(guardrails, name, Spy(name, getattr(guardrails, name)))
    prose = "Open Settings, then Billing (top right), and choose Export: CSV or PDF. " * 20
    assert Guardrails().redact(prose) == prose
    assert scanned == []
    assert Guardrails().redact("call +44 20 7946 0958") == "call [phone]"
    assert scanned == ["_PHONE"]  # 11 digits: maybe a phone number, too few for a card


def test_redaction_is_configurable() -> None:
    only_cards = Guardrails.parse(
        {"pii": {"emails": False, "phones": False, "patterns": [r"ACCT-\d+"]}}
    )
    assert only_cards.redact("a@b.io 4111111111111111 ACCT-99") == "a@b.io [card number] [redacted]"
    assert Guardrails.parse({"pii": {"enabled": False}}).redact("a@b.io") == "a@b.io"


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValidationError):
        Guardrails.parse({"input": [{"patterns": ["(unclosed"], "triggered_text": "x"}]})
    with pytest.raises(ValidationError):
        Guardrails.parse({"input": [{"name": "empty", "triggered_text": "x"}]})
    with pytest.raises(ValidationError):
        Guardrails.parse({"input": [{"keywords": ["x"], "triggered_text": "x", "action": "ban"}]})


async def test_keywords_match_whole_words_only() -> None:
    guard = Guardrails.parse(RULES)
    assert (await guard.check_input("There is a BOMB in the box", None)) is not None
    assert (await guard.check_input("that was the bombastic answer", None)) is None
    assert (await guard.check_input("they will burn  it down", None)) is None  # exact phrase
    assert (await guard.check_input("I'll burn it down!", None)) is not None


def test_output_rule() -> None:
    guard = Guardrails.parse({"output": {"blocked_terms": ["CompetitorCo"], "max_chars": 40}})
    blocked = guard.check_output("Try competitorco instead, it is cheaper.")
    assert blocked.blocked and "competitorco" not in blocked.text.lower()
    long = guard.check_output("word " * 30)
    assert long.truncated and len(long.text) <= 40 and long.text.endswith("…")
    assert guard.check_output("short").text == "short"


async def test_block_rule_stops_the_turn_before_the_model(db_url: str) -> None:
    provider = ScriptedProvider(says("Use the reset link."))
    async with running(db_url, provider, agents=agent_section(guardrails=RULES)) as h:
        customer = h.customer("web:ann")
        outcome = await customer.say("hi, my password is hunter2")
        assert provider.requests == []
        await customer.say("so how do I reset it?")

    assert outcome.run is not None and outcome.run.stop_reason is StopReason.GUARDRAIL
    assert outcome.replies == ["Please never share your password."]
    assert outcome.thread.state is ThreadState.OPEN
    # The blocked message does not reach the model later as history either.
    assert all("hunter2" not in m.content for m in provider.requests[0].messages)


async def test_escalate_rule_hands_the_thread_over(db_url: str) -> None:
    provider = ScriptedProvider()
    async with running(db_url, provider, agents=agent_section(guardrails=RULES)) as h:
        outcome = await h.customer("web:ann").say("there is a bomb in your office")

    assert outcome.run is not None and outcome.run.stop_reason is StopReason.GUARDRAIL
    assert outcome.replies == ["A person will look at this right away."]
    tags = [a.tag for a in outcome.actions if a.tag]
    assert tags == ["escalated", "priority:urgent"]  # the channel's own escalation actions
    assert (outcome.thread.state, outcome.thread.control) == (ThreadState.ESCALATED, Control.HUMAN)
    assert provider.requests == []


async def test_model_judged_rule_asks_a_remote_model(db_url: str) -> None:
    judged: list[ModelRequest] = []

    def model(request: ModelRequest) -> ModelResponse:
        if request.messages[0].content.startswith("You check customer messages"):
            judged.append(request)
            verdict = "Yes." if "crypto" in request.messages[1].content else "no"
            return ModelResponse(text=verdict)
        return ModelResponse(text="Here is how.")

    rules = {
        "input": [
            {
                "name": "investment advice",
                "judge": "Does the customer ask for investment advice?",
                "triggered_text": "I can't give investment advice.",
            }
        ]
    }
    provider = ScriptedProvider(default=model)
    async with running(db_url, provider, remote=True, agents=agent_section(guardrails=rules)) as h:
        customer = h.customer("web:ann")
        blocked = await customer.say("Should I buy crypto with my refund? mail me: ann@example.com")
        allowed = await customer.say("How do I export my data?")

    assert blocked.run is not None and blocked.run.stop_reason is StopReason.GUARDRAIL
    assert blocked.replies == ["I can't give investment advice."]
    assert allowed.run is not None and allowed.replies == ["Here is how."]
    assert len(judged) == 2
    assert "ann@example.com" not in judged[0].messages[1].content  # redacted for the judge too


async def test_pii_is_redacted_for_a_remote_model_only(db_url: str) -> None:
    message = "I'm ann@example.com, card 4111 1111 1111 1111, phone +1 415 555 0100"
    remote = ScriptedProvider(says("noted"), says("noted"))
    async with running(db_url, remote, remote=True) as h:
        customer = h.customer("web:ann")
        first = await customer.say(message)
        await customer.say("and again")

    sent = [m.content for r in remote.requests for m in r.messages if m.role == "user"]
    assert sent[0] == "I'm [email], card [card number], phone [phone]"
    assert sent[1] == sent[0]  # history is redacted as well
    # The audit record keeps what the customer wrote.
    assert first.run is not None and first.run.input[0]["content"] == message

    local = ScriptedProvider(says("noted"))
    async with running(db_url, local, remote=False) as h:
        await h.customer("web:ann2").say(message)
    assert local.requests[0].messages[-1].content == message


async def test_a_turn_redacts_each_message_once_however_many_model_calls_send_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    redacted: list[str] = []
    redact = Guardrails.redact

    def counting(self: Guardrails, text: str) -> str:
        redacted.append(text)
        return redact(self, text)

    monkeypatch.setattr(Guardrails, "redact", counting)
    remote = ScriptedProvider(calls(call("USER_INFO_LOOKUP", {})), says("Here is how."))
    async with running(db_url, remote, remote=True) as h:
        outcome = await h.customer("web:ann").say("I'm ann@example.com: how do I export?")

    assert outcome.replies == ["Here is how."]
    first, second = remote.requests
    assert len(second.messages) > len(first.messages)  # the history is sent again
    assert "ann@example.com" not in second.messages[1].content  # and still redacted
    # Each message of the history once, not once per model call that sent it.
    assert len(redacted) == len(set(redacted)) == len(second.messages)


async def test_output_rule_replaces_a_reply_with_a_blocked_term(db_url: str) -> None:
    provider = ScriptedProvider(says("Honestly CompetitorCo does this better."))
    rules = {
        "output": {"blocked_terms": ["CompetitorCo"], "blocked_text": "Let me get a colleague."}
    }
    async with running(db_url, provider, agents=agent_section(guardrails=rules)) as h:
        outcome = await h.customer("web:ann").say("who is better?")

    assert outcome.replies == ["Let me get a colleague."]
    assert outcome.streamed == "Let me get a colleague."  # nothing of the blocked text streamed
