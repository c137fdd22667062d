"""The offline responder's decisions, request by request, and a whole conversation with it
through the pipeline on a real knowledge base."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bot.agent.retrieval import CachedSearch
from bot.config import DatabaseSettings, KnowledgeSettings, OfflineSettings
from bot.domain import StopReason, ThreadState
from bot.knowledge import KnowledgeBase
from bot.providers.base import ChatMessage, ModelRequest, ToolSpec
from bot.providers.offline import CLARIFY, OfflineProvider
from bot.store.database import Database
from bot.store.migrate import upgrade
from tests.agent.conftest import FixedKnowledge, passage, running

TOOLS = tuple(
    ToolSpec(name, "", {"type": "object"}) for name in ("USER_INFO_LOOKUP", "ESCALATE", "CLOSE")
)
PASSWORD = passage(
    "Resetting your password",
    "Resetting your password › Reset a forgotten password",
    "## Reset a forgotten password\n1. Click **Forgot password?**.\n2. Follow the email.",
    0.92,
    "account/resetting-your-password.md",
)


def _request(*messages: ChatMessage, tools: tuple[ToolSpec, ...] = TOOLS) -> ModelRequest:
    return ModelRequest(messages=(ChatMessage("system", "be nice"), *messages), tools=tools)


def _responder(*passages: object, **settings: object) -> OfflineProvider:
    return OfflineProvider(OfflineSettings(**settings), FixedKnowledge(list(passages)))  # type: ignore[arg-type]


async def test_greeting_looks_the_customer_up_then_greets_by_name() -> None:
    responder = _responder(PASSWORD)
    first = await responder.complete(_request(ChatMessage("user", "Hello there!")))
    assert [c.name for c in first.tool_calls] == ["USER_INFO_LOOKUP"]
    lookup = first.tool_calls[0]
    deltas: list[str] = []

    async def sink(delta: str) -> None:
        deltas.append(delta)

    second = await responder.complete(
        _request(
            ChatMessage("user", "Hello there!"),
            ChatMessage("assistant", "", tool_calls=first.tool_calls),
            ChatMessage(
                "tool",
                json.dumps({"found": True, "name": "Ada Lovelace"}),
                tool_call_id=lookup.id,
                name="USER_INFO_LOOKUP",
            ),
        ),
        on_delta=sink,
    )
    assert second.tool_calls == ()
    assert second.text == "Hi Ada! How can I help you today?"
    assert "".join(deltas) == second.text and len(deltas) > 1


async def test_greeting_with_a_question_greets_and_answers() -> None:
    responder = _responder(PASSWORD)
    first = await responder.complete(
        _request(ChatMessage("user", "hi, how do I reset my password?"))
    )
    second = await responder.complete(
        _request(
            ChatMessage("user", "hi, how do I reset my password?"),
            ChatMessage("assistant", "", tool_calls=first.tool_calls),
            ChatMessage(
                "tool",
                json.dumps({"found": True, "name": "Grace Hopper"}),
                tool_call_id=first.tool_calls[0].id,
                name="USER_INFO_LOOKUP",
            ),
        )
    )
    # Steps start on their own line, under the greeting.
    assert second.text.startswith("Hi Grace!\n1. Click Forgot password?.\n2. Follow the email.")
    assert second.text.endswith(
        "Source: Resetting your password › Reset a forgotten password "
        "(account/resetting-your-password.md)"
    )


async def test_later_greetings_do_not_look_up_again() -> None:
    responder = _responder(PASSWORD)
    response = await responder.complete(
        _request(
            ChatMessage("user", "first"),
            ChatMessage("assistant", "answer"),
            ChatMessage("user", "hello again, how do I reset my password?"),
        )
    )
    assert response.tool_calls == ()
    assert response.text.startswith("Hi!\n1. Click")


async def test_question_below_the_confidence_threshold_escalates() -> None:
    weak = passage("Refund policy", "Refunds", "Refunds within 30 days.", 0.15)
    responder = _responder(weak, confidence_threshold=0.35)
    response = await responder.complete(_request(ChatMessage("user", "best pizza in Naples?")))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    assert response.tool_calls[0].arguments is not None
    assert "pizza" in response.tool_calls[0].arguments["reason"]
    assert response.text == ""


async def test_a_modest_score_well_ahead_of_the_next_article_answers() -> None:
    """The default calibration: 0.2 while 20% ahead of the next document is enough; the same
    score level with the runner-up close behind is not."""
    lead = passage("Receipts", "Receipts › Company expenses", "Open Rides → Receipts.", 0.22)
    behind = passage("Passes", "Passes", "Monthly passes.", 0.12)
    close_behind = passage("Passes", "Passes", "Monthly passes.", 0.2)
    question = ChatMessage("user", "where do I find receipts for my company expenses")
    response = await _responder(lead, behind).complete(_request(question))
    assert response.tool_calls == () and "Rides → Receipts" in response.text
    response = await _responder(lead, close_behind).complete(_request(question))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


async def test_a_remark_that_matches_nothing_gets_one_request_for_detail() -> None:
    weak = passage("Refund policy", "Refunds", "Refunds within 30 days.", 0.1)
    remark = ChatMessage("user", "I cancelled my annual plan last week")
    first = await _responder(weak).complete(_request(remark))
    assert first.tool_calls == () and first.text == CLARIFY
    # Asked once already: the next unclear remark goes to a person.
    again = await _responder(weak).complete(
        _request(remark, ChatMessage("assistant", CLARIFY), ChatMessage("user", "it was in May"))
    )
    assert [c.name for c in again.tool_calls] == ["ESCALATE"]
    # A request or a question without an English question word is no remark.
    for text in (
        "please remove my account and all my data",
        "二段階認証を有効にするには？",
        "the app crashes when I open a lesson",
    ):
        response = await _responder(weak).complete(_request(ChatMessage("user", text)))
        assert [c.name for c in response.tool_calls] == ["ESCALATE"], text


async def test_a_question_in_a_language_no_article_is_in_is_judged_as_an_english_one() -> None:
    """A customer who writes German to an English help center gets the English article a good
    match points to, as an English question would (a link beats waiting for a person); a
    German article answers the German question; what matches poorly goes to a person who reads
    the language."""
    english = passage("Refund policy", "Refunds", "Refunds within 30 days.", 0.9, "refunds.md")
    english = dataclasses.replace(english, language="en")
    german = dataclasses.replace(
        passage("Rückerstattung", "Rückerstattung", "Innerhalb von 30 Tagen.", 0.9, "rueck.md"),
        language="de",
    )
    question = "Wie funktionieren Rückerstattungen?"
    response = await _responder(english).complete(_request(ChatMessage("user", question)))
    assert response.tool_calls == () and "refunds.md" in response.text
    # Told, in German, why what follows is in English.
    assert response.text.startswith("Dazu haben wir einen Artikel auf Englisch:\nRefunds within")
    response = await _responder(german).complete(_request(ChatMessage("user", question)))
    assert response.tool_calls == () and response.text.startswith("Innerhalb von 30 Tagen.")
    assert "rueck.md" in response.text
    response = await _responder(english).complete(
        _request(ChatMessage("user", "How do refunds work?"))
    )
    assert response.text.startswith("Refunds within 30 days.")
    weak = _with(dataclasses.replace(english, score=0.1), known_share=0.2, coverage=0.3)
    response = await _responder(weak).complete(_request(ChatMessage("user", question)))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    assert response.tool_calls[0].arguments is not None
    assert "'de'" in response.tool_calls[0].arguments["reason"]


@pytest.mark.parametrize(
    ("text", "escalates"),
    [
        ("I want to talk to a human", True),
        ("Can I speak to a REAL   PERSON please", True),
        ("get me an agent", True),
        ("is the reagent in stock?", False),  # "agent" inside a word
        ("humanity is great, reset password?", False),
    ],
)
async def test_escalate_phrases_match_whole_words(text: str, escalates: bool) -> None:
    response = await _responder(PASSWORD).complete(_request(ChatMessage("user", text)))
    assert ("ESCALATE" in [c.name for c in response.tool_calls]) is escalates


async def test_confirmation_closes_with_a_summary() -> None:
    responder = _responder(PASSWORD)
    response = await responder.complete(
        _request(
            ChatMessage("user", "how do I reset my password?"),
            ChatMessage("assistant", "Click Forgot password."),
            ChatMessage("user", "Thanks, that solved it!"),
        )
    )
    assert [c.name for c in response.tool_calls] == ["CLOSE"]
    arguments = response.tool_calls[0].arguments
    assert arguments is not None and "reset my password" in arguments["resolution_summary"]
    assert response.text  # says goodbye alongside the CLOSE


async def test_without_the_tools_it_still_answers() -> None:
    responder = _responder()
    response = await responder.complete(
        _request(ChatMessage("user", "I want to talk to a human about quantum"), tools=())
    )
    assert response.tool_calls == () and response.text


async def test_a_conversation_on_the_bundled_knowledge_base(sqlite_url: str) -> None:
    db = Database(DatabaseSettings(url=sqlite_url))
    await upgrade(db.engine)
    settings = KnowledgeSettings()
    kb = KnowledgeBase(db, settings)
    try:
        await kb.ingest(settings.paths)
        knowledge = CachedSearch(kb)
        responder = OfflineProvider(OfflineSettings(), knowledge)
        async with running(sqlite_url, responder, knowledge=knowledge, remote=False) as h:
            ada = h.customer("web:ada", "Ada Lovelace")
            hello = await ada.say("Hi!")
            answer = await ada.say("How do I enable two-factor authentication?")
            done = await ada.say("thanks, that solved it")
            other = h.customer("web:bob", "Bob")
            person = await other.say("I want to talk to a human")
    finally:
        await db.dispose()

    assert hello.replies == ["Hi Ada! How can I help you today?"]
    assert answer.run is not None and answer.run.stop_reason is StopReason.END_TURN
    assert "Source: Two-factor authentication" in answer.replies[0]
    assert answer.run.rag_results and answer.run.rag_results[0]["source"].endswith(".md")
    assert done.run is not None and done.run.stop_reason is StopReason.CLOSED
    assert done.thread.state is ThreadState.CLOSED
    assert person.run is not None and person.run.stop_reason is StopReason.ESCALATED
    assert person.thread.state is ThreadState.ESCALATED


def test_an_answer_is_plain_text_without_markdown_emphasis() -> None:
    """What the customer reads has no stray asterisks ("see the *Refund policy*"), while list
    bullets, arithmetic and identifiers keep theirs."""
    from bot.knowledge import Passage
    from bot.providers.offline_answer import answer_from as _answer

    passage = Passage(
        chunk_id="c1",
        document_id="d1",
        title="Cancelling",
        heading="Cancel a paid plan",
        text="Go to **Settings** and click *Cancel*; see the *Refund policy*.\n"
        "* keep_this_name as it is\n* 2 * 3 stays",
        source="billing/cancelling.md",
        score=0.9,
    )
    answer = _answer(passage)
    assert "Go to Settings and click Cancel; see the Refund policy." in answer
    assert "* keep_this_name as it is" in answer and "* 2 * 3 stays" in answer
    assert answer.count("Source:") == 1


def test_a_table_in_the_answer_keeps_one_row_per_line() -> None:
    """A price table read as plain text: each row on its own line, cells between bars, no rule
    line — not every row run together on one line ("| Plan | … | |---|---| | Free | …")."""
    from bot.knowledge import Passage
    from bot.providers.offline_answer import answer_from as _answer

    passage = Passage(
        chunk_id="c1",
        document_id="d1",
        title="Billing",
        heading="Prices",
        text="Prices per seat:\n\n| Plan | Monthly |\n|---|:---:|\n| Free | $0 |\n"
        "| Team | $12 |\n\nAdding a seat is charged pro rata.",
        source="billing/billing.md",
        score=0.9,
    )
    assert _answer(passage).split("\n\nSource:")[0] == (
        "Prices per seat:\nPlan | Monthly\nFree | $0\nTeam | $12\n"
        "Adding a seat is charged pro rata."
    )


async def test_its_usage_is_an_estimate_and_says_so() -> None:
    """No model ran, so there is no tokenizer to count with: the character estimate, marked."""
    answer = await _responder().complete(_request(ChatMessage("user", "Hello there!")))
    assert answer.usage.estimated is True
    assert answer.usage.to_json()["estimated"] is True


def _with(found: object, **evidence: object) -> object:
    """A passage carrying keyword evidence (``MatchEvidence``) as the knowledge base gives it."""
    from bot.knowledge.index import MatchEvidence

    defaults: dict[str, object] = {
        "known_share": 1.0,
        "coverage": 1.0,
        "specific": True,
        "lead": 0.5,
    }
    return dataclasses.replace(found, evidence=MatchEvidence(**{**defaults, **evidence}))  # type: ignore[arg-type]


def _english(*args: object) -> object:
    """A passage of an article written in English."""
    return dataclasses.replace(passage(*args), language="en")  # type: ignore[arg-type]


async def test_a_question_the_best_article_covers_is_answered_even_at_a_low_score() -> None:
    """Calibrated on the question, not one threshold: a low score because half its words are
    no article's words ("plug", "somewhere") still answers when the article holds the words
    the knowledge base knows; close runners-up do not stop it."""
    battery = passage("E-bike battery", "Charging", "We swap and charge the batteries.", 0.17)
    other = passage("Passes", "Passes", "Monthly passes.", 0.16)
    question = ChatMessage("user", "do I have to plug the ebike in somewhere after?")
    response = await _responder(_with(battery, known_share=0.34), _with(other)).complete(
        _request(question)
    )
    assert response.tool_calls == () and "charge the batteries" in response.text
    decision = response.rag_results[0]
    assert decision["action"] == "answer" and decision["candidates"][0]["coverage"] == 1.0


async def test_a_question_mostly_in_words_no_article_uses_escalates() -> None:
    incidental = passage("API keys", "API keys", "Create a key.", 0.07)
    response = await _responder(_with(incidental, known_share=0.25)).complete(
        _request(ChatMessage("user", "do you have a good recipe for banana bread"))
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    assert response.tool_calls[0].arguments is not None
    assert "Nothing in the knowledge base covers" in response.tool_calls[0].arguments["reason"]


async def test_an_article_sharing_a_word_but_not_the_topic_does_not_answer() -> None:
    shares_a_word = passage("Webhooks", "Webhooks", "Webhooks send an HTTP POST.", 0.28)
    response = await _responder(_with(shares_a_word, coverage=0.3, specific=False)).complete(
        _request(ChatMessage("user", "Which user agent header should my API client send?"))
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


async def test_a_question_about_the_customers_own_order_goes_to_a_person() -> None:
    refunds = passage("Refund policy", "When the money arrives", "Within 10 days.", 0.9)
    response = await _responder(_with(refunds)).complete(
        _request(ChatMessage("user", "where is my refund for order #88123?"))
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    assert response.tool_calls[0].arguments is not None
    assert "own account or order" in response.tool_calls[0].arguments["reason"]


@pytest.mark.parametrize("follow_up", ["and what if I'm renting?", "how do I cancel?"])
async def test_a_follow_up_is_searched_with_the_conversation_so_far(follow_up: str) -> None:
    knowledge = FixedKnowledge([_with(PASSWORD)])  # type: ignore[list-item]
    responder = OfflineProvider(OfflineSettings(), knowledge)
    await responder.complete(
        _request(
            ChatMessage("user", "how much does the monthly pass cost?"),
            ChatMessage("assistant", "19 EUR a month."),
            ChatMessage("user", follow_up),
        )
    )
    last = knowledge.queries[-1]
    assert last.startswith("how much does the monthly pass cost? ")
    assert last.endswith(follow_up.removeprefix("and "))


async def test_a_new_self_contained_question_is_searched_alone() -> None:
    """The conversation's article does not match the new question alone: a new topic."""

    class ByQuery(FixedKnowledge):
        async def search(self, query: str, *, limit: int = 5) -> list[object]:  # type: ignore[override]
            self.queries.append(query)
            topic = PASSWORD if "password" in query else passage("VAT", "VAT", "Add VAT.", 0.9)
            return [_with(topic)]

    knowledge = ByQuery()
    responder = OfflineProvider(OfflineSettings(), knowledge)
    response = await responder.complete(
        _request(
            ChatMessage("user", "how do I reset my password"),
            ChatMessage("assistant", "Click Forgot password."),
            ChatMessage("user", "where do I add our company VAT number for invoices?"),
        )
    )
    assert "Add VAT." in response.text


@pytest.mark.parametrize(
    ("last", "tool"),
    [
        ("done, changed it in settings. thanks!", "CLOSE"),
        ("updated the card, thanks for the help", "CLOSE"),
        ("thanks, but the reset email never arrived", None),
        ("thanks, I also need to change my email address", None),
        ("ok did that and it's moved to the 3rd, cheers", "CLOSE"),
        ("sorted it now, ta", "CLOSE"),
        ("did that, now how do i add a second card?", None),
        ("great thanks! and what size password do i need for the admin account", None),
        ("cheers, and how many tries do i get before it locks", None),
    ],
)
async def test_thanks_with_a_remark_after_an_answer(last: str, tool: str | None) -> None:
    """Thanks and a remark that reports no problem wraps the conversation up; thanks and a
    problem does not close it."""
    response = await _responder(PASSWORD).complete(
        _request(
            ChatMessage("user", "how do I reset my password?"),
            ChatMessage("assistant", "Click Forgot password."),
            ChatMessage("user", last),
        )
    )
    names = [c.name for c in response.tool_calls]
    assert ("CLOSE" in names) is (tool == "CLOSE")


@pytest.mark.parametrize(
    ("last", "tool"),
    [
        ("perfect, all done now", "CLOSE"),
        ("great that's exactly what I needed, thank you", "CLOSE"),
        ("yup, did the trick", "CLOSE"),
        ("cancelled it, no further questions. have a good day", "CLOSE"),
        ("great, but how do I do it on android?", None),
        ("i did that but nothing happened", "ESCALATE"),
        ("ok", None),
        ("lovely, all reset. have a nice evening", "CLOSE"),
        ("thanks but I already checked the spam folder, nothing", "ESCALATE"),
        ("thanks, but the link had expired", None),
    ],
)
async def test_a_short_acknowledgement_after_an_answer_closes(last: str, tool: str | None) -> None:
    """A positive acknowledgement with nothing new in it wraps the conversation up; one with a
    question is answered, and one that reports the fix did nothing goes to a person."""
    response = await _responder(PASSWORD).complete(
        _request(
            ChatMessage("user", "how do I reset my password?"),
            ChatMessage("assistant", "Click Forgot password."),
            ChatMessage("user", last),
        )
    )
    assert [c.name for c in response.tool_calls] == ([tool] if tool else [])


@pytest.mark.parametrize("first", ["perfect, all done now", "k cool", "lovely ta x"])
async def test_an_acknowledgement_as_the_first_message_closes(first: str) -> None:
    """It answers something outside this conversation (an email, a call): nothing is left to
    answer, so the conversation is wrapped up rather than asked to say more."""
    response = await _responder(PASSWORD).complete(_request(ChatMessage("user", first)))
    assert [c.name for c in response.tool_calls] == ["CLOSE"]


@pytest.mark.parametrize("first", ["ok", "thanks", "thanks. my box hasn't arrived"])
async def test_a_bare_ok_or_thanks_as_the_first_message_does_not_close(first: str) -> None:
    response = await _responder(PASSWORD).complete(_request(ChatMessage("user", first)))
    assert "CLOSE" not in [c.name for c in response.tool_calls]


async def test_a_question_in_another_language_gets_the_article_its_shared_words_point_to() -> None:
    """No article is in Spanish: the words the question shares with the articles ("internet",
    "videos") point to one English article well ahead of the next, and a link to it beats
    waiting for a person; when they point nowhere in particular, a person answers."""
    slow = dataclasses.replace(
        passage("Slow wifi", "Slow wifi › Evenings", "Move the hub out of the cupboard.", 0.12),
        language="en",
    )
    outage = dataclasses.replace(
        passage("Outages", "Outages", "Check the status page.", 0.03), language="en"
    )
    question = ChatMessage(
        "user", "hola, mi internet va muy lento por las noches y los videos se cortan, qué hago?"
    )
    clear = _responder(_with(slow, known_share=0.25), _with(outage, coverage=0.34))
    response = await clear.complete(_request(question))
    assert response.tool_calls == () and "Move the hub" in response.text
    assert response.rag_results[0]["action"] == "answer"
    close_behind = dataclasses.replace(outage, score=0.11)
    unclear = _responder(_with(slow, known_share=0.25), _with(close_behind))
    response = await unclear.complete(_request(question))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


async def test_across_languages_a_smaller_lead_answers_when_the_article_also_covers_more() -> None:
    """Most of the question's words are no article's (a weak match an English question would
    not be answered from): a lead of 0.15-0.2 over the next article is no clear lead alone;
    with the best article also holding more of the question's known words than the next, the
    two signals agree."""
    time_off = _english("Request time off", "Request time off", "Tap Time off, then Request.", 0.14)
    approve = _english("Approve requests", "Approve requests", "Managers approve in Team.", 0.118)
    question = ChatMessage("user", "hola, ¿cómo pido vacaciones en la aplicación?")
    agreeing = _responder(
        _with(time_off, known_share=0.3, coverage=0.88, lead=0.3),
        _with(approve, known_share=0.3, coverage=0.58),
    )
    response = await agreeing.complete(_request(question))
    assert response.tool_calls == () and "Tap Time off" in response.text
    even = _responder(
        _with(time_off, known_share=0.3, coverage=0.88, lead=0.0),
        _with(approve, known_share=0.3, coverage=0.88),
    )
    response = await even.complete(_request(question))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


async def test_a_question_in_another_language_is_judged_as_an_english_one_would_be() -> None:
    """No clear lead, but the best article holds the question's words read in English as an
    English question's would: answered, as that question would be. One whose words point
    nowhere goes to a person who reads the language."""
    freeze = _english("Freeze your card", "Freeze your card › Unfreeze", "Tap Card, then Unfreeze.", 0.5)
    declined = _english("Declined payments", "Declined payments", "Check the card is not frozen.", 0.45)
    question = ChatMessage("user", "ho bloccato la carta per sbaglio, come faccio a sbloccarla?")
    covered = _responder(_with(freeze, coverage=0.8, lead=0.0), _with(declined, coverage=0.6))
    response = await covered.complete(_request(question))
    assert response.tool_calls == () and "Unfreeze" in response.text
    thin = _responder(
        _with(dataclasses.replace(freeze, score=0.1), known_share=0.2, coverage=0.2, lead=0.0),
        _with(dataclasses.replace(declined, score=0.09), known_share=0.2, coverage=0.2),
    )
    response = await thin.complete(_request(question))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    assert "'it'" in response.rag_results[0]["reason"]


async def test_a_job_enquiry_in_the_help_centers_words_goes_to_a_person() -> None:
    """"Delivery drivers" are the help center's words, but a job enquiry is no support question:
    only an article clearly about it answers."""
    delivery = passage("Delivery windows", "Delivery windows", "Our drivers come 8-12.", 0.3)
    question = ChatMessage("user", "are you hiring delivery drivers in Leeds?")
    response = await _responder(_with(delivery)).complete(_request(question))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    careers = passage("Careers", "Careers › Drivers", "Apply at jobs.example.com.", 0.8)
    response = await _responder(_with(careers)).complete(_request(question))
    assert response.tool_calls == () and "jobs.example.com" in response.text


async def test_the_sentence_that_asks_is_searched_without_the_story_around_it() -> None:
    """"I run a small real estate office with 6 agents." buries the question in words no
    article uses; the sentence that asks, alone, is what the help center answers. A question
    that names no topic of its own ("Any idea what to do?") is not searched alone."""
    teams = passage("Team plans", "Team plans › Who pays", "The company pays for all seats.", 0.4)
    stray = passage("Gift cards", "Gift cards", "Buy a gift card.", 0.1)

    class ByQuery(FixedKnowledge):
        async def search(self, query: str, *, limit: int = 5) -> list[object]:  # type: ignore[override]
            self.queries.append(query)
            if query.startswith("Is there a plan"):
                return [_with(teams)]
            return [_with(stray, known_share=0.44)]

    story = "I run a small real estate office with 6 agents. "
    knowledge = ByQuery()
    response = await OfflineProvider(OfflineSettings(), knowledge).complete(
        _request(
            ChatMessage("user", story + "Is there a plan where the company pays for all of them?")
        )
    )
    assert response.tool_calls == () and "The company pays" in response.text
    assert knowledge.queries[-1] == "Is there a plan where the company pays for all of them?"
    knowledge = ByQuery()
    response = await OfflineProvider(OfflineSettings(), knowledge).complete(
        _request(ChatMessage("user", story + "Any idea what to do?"))
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    assert knowledge.queries == [story + "Any idea what to do?"]


async def test_a_short_question_the_conversation_does_not_explain_is_read_alone() -> None:
    """Two words of topic ("a vegan plan") read with a promo-code conversation match nothing
    clearly; alone they match their article."""
    promo = passage("Promo codes", "Promo codes", "Enter it at checkout.", 0.2)
    promo = _with(promo, coverage=0.25)
    vegan = _with(passage("Dietary plans", "Dietary plans", "Choose the vegan plan.", 1.0))

    class Conversation(FixedKnowledge):
        async def search(self, query: str, *, limit: int = 5) -> list[object]:  # type: ignore[override]
            self.queries.append(query)
            return [promo] if "promo" in query else [vegan]

    response = await OfflineProvider(OfflineSettings(), Conversation()).complete(
        _request(
            ChatMessage("user", "where do I put a promo code"),
            ChatMessage("assistant", "Enter it at checkout."),
            ChatMessage("user", "great, worked. Also can I get a vegan plan?"),
        )
    )
    assert response.tool_calls == () and "vegan plan" in response.text


async def test_an_offer_no_article_names_goes_to_a_person() -> None:
    """"Home" and "insurance" are the help center's words, but no article names home
    insurance: whether the company sells it, a person says. An offer an article names is
    answered."""
    calls = passage(
        "Vet video calls", "Vet video calls", "Free vet video calls on your insurance, from home.", 0.3
    )
    response = await _responder(_with(calls), _with(PASSWORD)).complete(
        _request(ChatMessage("user", "do you do home insurance as well? need a quote for my flat"))
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    discounts = passage(
        "Discounts", "Discounts › Students", "A student discount of 10% for anyone at college.", 0.3
    )
    response = await _responder(_with(discounts), _with(PASSWORD)).complete(
        _request(ChatMessage("user", "do you offer a student discount?"))
    )
    assert response.tool_calls == () and "student discount of 10%" in response.text
    sso = passage(
        "Single sign-on", "Setting it up", "With SAML single sign-on, your team signs in.", 0.3
    )
    response = await _responder(_with(sso), _with(PASSWORD)).complete(
        _request(ChatMessage("user", "do you offer single sign-on?"))
    )
    assert response.tool_calls == () and "SAML" in response.text


async def test_a_business_enquiry_goes_to_a_person() -> None:
    direct = passage("Paying your vet directly", "Direct billing", "We pay the vet.", 0.6)
    response = await _responder(_with(direct)).complete(
        _request(
            ChatMessage(
                "user",
                "i'm the practice manager at a vets in bristol, we want to join your direct "
                "billing network. who do we speak to",
            )
        )
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    assert "business enquiry" in (response.tool_calls[0].arguments or {})["reason"]


LONG_STORY = (
    "why am i only getting 80% back now?? my boy turned 9 this year and the last payout was "
    "way short of the bill"
)


async def test_a_long_story_around_a_question_answers_on_a_lower_coverage_when_one_leads() -> (
    None
):
    """The story's words weigh in the coverage of a long message: a lower share answers when
    the best article leads the next clearly; without that lead, or in a short question, not."""
    excess = passage("Excess and co-payment", "Co-payment", "From age 9 you pay 20%.", 0.19)
    other = passage("Routine care", "Routine care", "Vaccinations.", 0.1)
    leading = _responder(_with(excess, coverage=0.33), _with(other, coverage=0.3))
    response = await leading.complete(_request(ChatMessage("user", LONG_STORY)))
    assert response.tool_calls == () and "you pay 20%" in response.text
    near = dataclasses.replace(other, score=0.18)
    close_behind = _responder(_with(excess, coverage=0.33), _with(near, coverage=0.3))
    response = await close_behind.complete(_request(ChatMessage("user", LONG_STORY)))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    response = await leading.complete(_request(ChatMessage("user", "why only 80% back?")))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


async def test_a_story_in_words_no_article_uses_answers_when_the_best_article_holds_what_it_asks(
) -> None:
    """Most words of "my springer got out…" are no article's words; the sentence that asks
    names two, and the best article holds both: the story does not make it out of scope. When
    the best article does not hold what it asks, or the message asks in words no article uses,
    it does not answer."""
    question = ChatMessage(
        "user",
        "my springer got out of the garden yesterday and still hasnt come home, im in bits. "
        "do you help with posters or a reward or anything",
    )
    covered = passage("What's covered", "Lost pets", "We pay for posters and a reward.", 0.137)
    other = passage("Vet video calls", "Vet video calls", "Call a vet.", 0.05)
    scope = {"known_share": 0.4, "coverage": 0.5}
    holds = _responder(_with(covered, **scope), _with(other, **scope))
    response = await holds.complete(_request(question))
    assert response.tool_calls == () and "posters and a reward" in response.text
    only_posters = dataclasses.replace(covered, text="We pay for posters.")
    lacks = _responder(_with(only_posters, **scope), _with(other, **scope))
    response = await lacks.complete(_request(question))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    telescope = ChatMessage("user", "Which telescope should I buy to see Saturn's rings?")
    response = await holds.complete(_request(telescope))
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


async def test_a_question_wholly_in_the_help_centers_words_answers_on_a_lower_coverage() -> None:
    """"the date the money comes out": every word is one the knowledge base knows, spread over
    its articles; the best one holding more than a third of them answers. A word no article
    uses, or a third or less, and it does not."""
    dates = passage("Payment date", "Changing the date", "Pick any day from 1 to 28.", 0.28)
    question = ChatMessage("user", "can i change the date the money comes out")
    response = await _responder(_with(dates, coverage=0.35)).complete(_request(question))
    assert response.tool_calls == () and "Pick any day" in response.text
    for evidence in ({"coverage": 0.35, "known_share": 0.8}, {"coverage": 0.3}):
        response = await _responder(_with(dates, **evidence)).complete(_request(question))
        assert [c.name for c in response.tool_calls] == ["ESCALATE"]


async def test_thanks_but_an_overdue_case_goes_to_a_person_not_closed() -> None:
    """"ok thanks, but it's been 3 weeks now and you never released it" opens like a
    wrap-up; what follows is the customer's own case, overdue."""
    deposit = passage("Security deposit", "Release", "We release the hold within a day.", 0.6)
    asked = ChatMessage("user", "how long does the deposit take to come back")
    response = await _responder(_with(deposit)).complete(
        _request(
            asked,
            ChatMessage("assistant", "We release the hold within a day."),
            ChatMessage("user", "ok thanks, but it's been 3 weeks now and you never released it"),
        )
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]


@pytest.mark.parametrize(
    ("follow_up", "tool"),
    [
        ("ok noted, appreciate it 👍", "CLOSE"),
        ("oh wait i was at the wrong locker lol, got it now. thanks", "CLOSE"),
        ("ok but the code never arrives by email, i tried 5 times", "ESCALATE"),
        # What they will do now wraps up; an answer that was not it, or whose step is not
        # there, goes to a person (before, the same article was sent again).
        ("ok will do", "CLOSE"),
        ("brilliant, that's what I needed to know", "CLOSE"),
        ("no, that's not it", "ESCALATE"),
        ("I did that already", "ESCALATE"),
        ("hmm, not really what I was after", "ESCALATE"),
        ("I can't see that button anywhere", "ESCALATE"),
    ],
)
async def test_after_an_answer_appreciation_closes_and_a_step_that_never_works_escalates(
    follow_up: str, tool: str
) -> None:
    response = await _responder(_with(PASSWORD)).complete(
        _request(
            ChatMessage("user", "how do i reset my password"),
            ChatMessage("assistant", "Click Forgot password."),
            ChatMessage("user", follow_up),
        )
    )
    assert [c.name for c in response.tool_calls] == [tool]


async def test_a_follow_up_is_searched_with_an_earlier_problem_report() -> None:
    """"the sms code never arrives when I register" reports a problem (it reads as not solved):
    it is still the topic a follow-up leans on."""
    knowledge = FixedKnowledge([_with(PASSWORD)])  # type: ignore[list-item]
    responder = OfflineProvider(OfflineSettings(), knowledge)
    await responder.complete(
        _request(
            ChatMessage("user", "the sms code never arrives when I register"),
            ChatMessage("assistant", "Check the number."),
            ChatMessage("user", "and what if I'm abroad?"),
        )
    )
    assert any("sms code" in q and "abroad" in q for q in knowledge.queries)


async def test_a_request_of_its_own_after_thanks_is_searched_alone() -> None:
    """"thanks, but I also need to change the card it comes out of" ends on a pronoun, yet
    announces a new request: alone it matches its article, and that is the answer."""
    bill = _with(passage("Your bill", "Your bill", "Your first bill covers two periods.", 0.9))
    card = _with(passage("Ways to pay", "Ways to pay", "Change the card in Billing.", 0.8))

    class Conversation(FixedKnowledge):
        async def search(self, query: str, *, limit: int = 5) -> list[object]:  # type: ignore[override]
            self.queries.append(query)
            return [bill] if "bill" in query else [card]

    knowledge = Conversation()
    response = await OfflineProvider(OfflineSettings(), knowledge).complete(
        _request(
            ChatMessage("user", "why is my bill higher than last month"),
            ChatMessage("assistant", "Your first bill covers two periods."),
            ChatMessage("user", "thanks, but I also need to change the card it comes out of"),
        )
    )
    assert response.tool_calls == () and "Change the card" in response.text
    assert not any("bill" in q for q in knowledge.queries)


async def test_a_question_for_no_support_article_is_not_answered_on_closeness_in_meaning() -> None:
    """Hybrid retrieval lifts an article close in meaning above the confidence threshold ("a
    hotel near the airport branch" is close to airport pick-up): for a question that is no support
    question, only an article holding its most specific word answers, found by keywords."""
    question = ChatMessage(
        "user", "can you recommend a decent hotel near the munich airport branch"
    )
    airport = passage("Airport pick-up", "Airport pick-up", "Our desk is in terminal 2.", 0.46)
    for found in (_with(airport, coverage=0.43, specific=False), airport):
        response = await _responder(found).complete(_request(question))
        assert [c.name for c in response.tool_calls] == ["ESCALATE"]
        assert response.tool_calls[0].arguments is not None
        assert "no article is about it" in response.tool_calls[0].arguments["reason"]
    hotels = passage("Partner hotels", "Hotels near our branches", "See partner hotels.", 0.7)
    response = await _responder(_with(hotels)).complete(_request(question))
    assert response.tool_calls == () and "partner hotels" in response.text


@pytest.mark.parametrize(
    "text",
    ["do you guys deliver groceries or stuff from the pharmacy too", "can i buy bitcoin in the app"],
)
async def test_an_offer_asked_with_another_verb_goes_to_a_person(text: str) -> None:
    """Close in meaning to how ordering works, but no article names the thing: whether the
    company delivers or sells it at all, a person says."""
    ordering = passage("Placing an order", "Placing an order", "Pick a restaurant and pay.", 0.6)
    response = await _responder(_with(ordering, specific=False)).complete(
        _request(ChatMessage("user", text))
    )
    assert [c.name for c in response.tool_calls] == ["ESCALATE"]
    assert response.tool_calls[0].arguments is not None
    assert "No article mentions" in response.tool_calls[0].arguments["reason"]
