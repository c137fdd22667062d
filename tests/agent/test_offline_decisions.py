"""The offline responder's confidence read from the score distribution (a best article far ahead
of the next), and a "not solved" that asks a new question."""

from __future__ import annotations

import dataclasses

from bot.knowledge import Passage
from bot.knowledge.index import MatchEvidence
from bot.providers.base import ChatMessage, ModelRequest, ToolSpec
from bot.providers.offline import CLARIFY, OfflineProvider
from tests.agent.conftest import FixedKnowledge, passage

TOOLS = tuple(
    ToolSpec(name, "", {"type": "object"}) for name in ("USER_INFO_LOOKUP", "ESCALATE", "CLOSE")
)


def _request(*messages: ChatMessage) -> ModelRequest:
    return ModelRequest(messages=(ChatMessage("system", "be nice"), *messages), tools=TOOLS)


def _with(found: Passage, **evidence: object) -> Passage:
    defaults: dict[str, object] = {"known_share": 1.0, "coverage": 1.0, "specific": True, "lead": 0.5}
    return dataclasses.replace(found, evidence=MatchEvidence(**{**defaults, **evidence}))  # type: ignore[arg-type]


def _responder(*found: Passage) -> OfflineProvider:
    from bot.config import OfflineSettings

    return OfflineProvider(OfflineSettings(), FixedKnowledge(list(found)))


CANCEL = passage("Cancelling your policy", "Cancel", "Go to Policy › Cancel.", 0.41)
RENEWAL = passage("Renewal prices", "Prices", "Prices change at renewal.", 0.16)
QUESTION = ChatMessage("user", "found cheaper cover somewhere else, how do i end mine with you")


async def test_a_best_article_far_ahead_of_the_next_answers_with_part_of_the_question() -> None:
    """The rest of the question is the customer's story: the article is twice the next one's
    score and holds a fair share of the known words."""
    response = await _responder(
        _with(CANCEL, coverage=0.37, known_share=0.5, specific=False),
        _with(RENEWAL, coverage=0.37, known_share=0.5, specific=False),
    ).complete(_request(QUESTION))
    assert response.tool_calls == () and "Policy › Cancel" in response.text
    assert "far ahead" in response.rag_results[0]["reason"]


async def test_the_same_share_with_a_close_runner_up_still_escalates() -> None:
    close = dataclasses.replace(RENEWAL, score=0.35)
    response = await _responder(
        _with(CANCEL, coverage=0.37, known_share=0.5, specific=False),
        _with(close, coverage=0.37, known_share=0.5, specific=False),
    ).complete(_request(QUESTION))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


async def test_a_lead_over_too_small_a_share_still_escalates() -> None:
    response = await _responder(
        _with(CANCEL, coverage=0.2, known_share=0.5, specific=False),
        _with(RENEWAL, coverage=0.2, known_share=0.5, specific=False),
    ).complete(_request(QUESTION))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


async def test_a_lead_does_not_make_words_no_article_uses_in_scope() -> None:
    """Out of scope stays out of scope: few of the question's words are the help center's."""
    low = dataclasses.replace(CANCEL, score=0.12)
    lower = dataclasses.replace(RENEWAL, score=0.05)
    response = await _responder(
        _with(low, known_share=0.25, coverage=0.37), _with(lower, known_share=0.25)
    ).complete(_request(ChatMessage("user", "do you have a good recipe for banana bread")))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


PAYMENT = passage("Bank transfers", "Send", "Transfers arrive in 2 hours.", 0.8, "transfers.md")
SCAM = passage("Reporting a scam", "Report", "Report it in the app at once.", 0.8, "scam.md")


async def test_not_solved_with_a_question_another_article_answers_is_answered() -> None:
    """"it never came, what do i do now" after an answer about transfers: a new question."""
    response = await _responder(_with(SCAM)).complete(
        _request(
            ChatMessage("user", "sent money by bank transfer to a seller for a console"),
            ChatMessage("assistant", "Transfers arrive in 2 hours.\n\nSource: Bank transfers › Send (transfers.md)"),
            ChatMessage("user", "they've blocked me and it never came, what do i do now"),
        )
    )
    assert response.tool_calls == () and "Report it in the app" in response.text


async def test_not_solved_with_a_question_the_given_article_answers_escalates() -> None:
    response = await _responder(_with(PAYMENT)).complete(
        _request(
            ChatMessage("user", "how long does a bank transfer take"),
            ChatMessage("assistant", "Transfers arrive in 2 hours.\n\nSource: Bank transfers › Send (transfers.md)"),
            ChatMessage("user", "tried that already and it still isn't there, what do i do now?"),
        )
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    assert "did not solve" in response.rag_results[0]["reason"]


async def test_not_solved_with_nothing_asked_after_a_question_back_escalates() -> None:
    response = await _responder(_with(PAYMENT)).complete(
        _request(
            ChatMessage("user", "no internet since yesterday"),
            ChatMessage("assistant", CLARIFY),
            ChatMessage("user", "ta but the line test says no fault and still nothing works"),
        )
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


async def test_thanks_with_no_need_left_closes() -> None:
    """"no need" says nothing more is wanted: not a request."""
    response = await _responder(_with(PAYMENT)).complete(
        _request(
            ChatMessage("user", "what's the number for a power cut"),
            ChatMessage("assistant", "Call 105.\n\nSource: Power cuts › Call (power.md)"),
            ChatMessage("user", "lights are back on now so no need, thanks"),
        )
    )
    assert [c.name for c in response.tool_calls] == ["CLOSE"]


async def test_a_glad_first_message_with_thanks_closes() -> None:
    """Thanks for help given elsewhere, nothing asked: the customer is wrapping up."""
    response = await _responder(_with(PAYMENT)).complete(
        _request(ChatMessage("user", "brilliant, got in fine this morning. thanks for the help"))
    )
    assert [c.name for c in response.tool_calls] == ["CLOSE"]


async def test_a_first_message_with_thanks_and_news_of_a_problem_is_not_closed() -> None:
    for text in ("thanks in advance, my card was declined at the till", "hi thanks, internet is down"):
        response = await _responder(_with(PAYMENT)).complete(_request(ChatMessage("user", text)))
        assert "CLOSE" not in [c.name for c in response.tool_calls], text


async def test_an_offer_asked_for_by_its_price_is_found_by_its_discount() -> None:
    student = passage(
        "Student and corporate discounts", "Students", "Students get a 20% discount on any plan.", 0.9
    )
    response = await _responder(_with(student)).complete(
        _request(ChatMessage("user", "do you do student prices"))
    )
    assert response.tool_calls == () and "20% discount" in response.text


async def test_an_offer_no_article_names_still_escalates_by_its_price() -> None:
    student = passage(
        "Student and corporate discounts", "Students", "Students get a 20% discount on any plan.", 0.9
    )
    response = await _responder(_with(student)).complete(
        _request(ChatMessage("user", "do you do pensioner prices"))
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
