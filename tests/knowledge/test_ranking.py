"""Ranking beyond literal words: support-vocabulary equivalents and negated topics
(``bot.knowledge.vocabulary``, ``bot.knowledge.index``)."""

from __future__ import annotations

import pytest

from bot.knowledge import index as index_module
from bot.knowledge.index import SearchIndex
from bot.knowledge.vocabulary import marked_tokens
from tests.knowledge.articles import build_index

ARTICLES = {
    "cancel-subscription": (
        "Cancel your subscription",
        [
            (
                "Cancel a paid subscription",
                "1. Open Settings.\n2. Choose Billing.\n3. Click Cancel.",
            ),
            ("What happens next", "Your workspace stays open until the end of the period."),
        ],
    ),
    "refund-policy": (
        "Refund policy",
        [
            ("Who qualifies", "A refund is possible within 30 days of the first payment."),
            ("How to ask", "Write to billing with the invoice number."),
        ],
    ),
    "change-plan": (
        "Change your plan",
        [
            ("Move to a cheaper plan", "Pick the Starter tier under Settings, Plan."),
            ("Annual or monthly", "Switching the period takes effect at renewal."),
        ],
    ),
    "email-preferences": (
        "Email preferences",
        [
            ("Unsubscribe from newsletters", "Use the link at the bottom of any newsletter."),
            ("Product news", "We write once a month; nothing is shared with anyone."),
        ],
    ),
    "course-progress": (
        "Track your progress",
        [
            ("Progress bar", "Each lesson you have done fills the bar a little more."),
            ("Resume", "Open the course to carry on where you left off."),
        ],
    ),
    "certificates": (
        "Get your certificate",
        [
            ("When it is issued", "Finish every lesson of a course and the certificate appears."),
            ("Download", "Certificates are PDFs under Profile, Achievements."),
        ],
    ),
}


def build() -> SearchIndex:
    return build_index(ARTICLES)


def order(index: SearchIndex, question: str) -> list[str]:
    return [hit.chunk.document_id for hit in index.search(question, limit=6)]


def test_a_paraphrase_with_no_shared_word_finds_its_article_through_the_table() -> None:
    index = build()
    # Neither "terminate" nor "membership" occurs in the knowledge base.
    assert not any(t.known for t in index.query_terms("terminate my membership"))
    hits = index.search("terminate my membership")
    assert hits[0].chunk.document_id == "cancel-subscription"
    # Found through equivalents, it is answered with less confidence than the literal words.
    [literal, *_] = index.search("cancel my subscription")
    assert literal.chunk.document_id == "cancel-subscription"
    assert 0.0 < hits[0].confidence < literal.confidence <= 1.0


def test_money_back_means_a_refund() -> None:
    assert order(build(), "can I get my money back?")[0] == "refund-policy"


def test_the_customers_own_word_outranks_an_equivalent() -> None:
    # "unsubscribe" is in the cancel group, but the article that uses the customer's word wins.
    assert order(build(), "how do I unsubscribe from the newsletter")[0] == "email-preferences"
    assert order(build(), "cancel subscription")[0] == "cancel-subscription"


def test_a_negated_topic_ranks_below_the_asked_one(monkeypatch: pytest.MonkeyPatch) -> None:
    question = "I don't want a refund, I want annual"
    ranked = order(build(), question)
    assert ranked.index("change-plan") < ranked.index("refund-policy")
    # Without the negation the refund article would come first: the test measures the rule.
    monkeypatch.setattr(index_module, "NEGATED_WEIGHT", 1.0)
    monkeypatch.setattr(index_module, "BODY_ONLY_TERM_WEIGHT", 1.0)
    unmarked = order(build(), question)
    assert unmarked.index("refund-policy") < unmarked.index("change-plan")


def test_negation_marks_the_unwanted_words_only() -> None:
    marked = marked_tokens("I don't want to cancel, I just want to pay less each month", "en")
    assert [t for t, negated in marked if negated] == ["cancel"]
    marked = marked_tokens("I want the annual plan instead of the monthly one", "en")
    assert [t for t, negated in marked if negated] == ["monthly"]
    # A symptom is not a negated topic: "doesn't work" asks about what does not work.
    assert not any(n for _, n in marked_tokens("my card doesn't work at checkout", "en"))
    assert not any(n for _, n in marked_tokens("I can't log in", "en"))


def test_confidence_stays_between_zero_and_one() -> None:
    index = build()
    for question in (
        "cancel cancel cancel subscription subscription",
        "I don't want a refund",
        "money back money back refund reimburse",
        "best pizza in new york",
    ):
        for hit in index.search(question):
            assert 0.0 <= hit.confidence <= 1.0


def test_a_short_word_missing_a_letter_is_corrected_but_not_a_swapped_one() -> None:
    index = build()
    [term] = index.query_terms("finsh")  # five letters and more: one edit, as before
    assert term.term == index.query_terms("finish")[0].term
    [term] = index.query_terms("pla")  # three letters: never
    assert not term.known
    # "lesn" is "lesson" less two letters; "mont" is "month" less one.
    assert not index.query_terms("lesn")[0].known
    assert index.query_terms("mont")[0].term == index.query_terms("month")[0].term
    # A four-letter word with a letter changed is another word more often than a typo.
    assert index.query_terms("plan")[0].known and not index.query_terms("plen")[0].known


def test_not_wanting_to_keep_doing_something_asks_to_stop_it() -> None:
    # "don't want to keep paying" rejects going on paying, not paying: the question is how to
    # stop paying (cancel), and "paying" is not a word the customer turns away from.
    question = "I don't want to keep paying for this anymore, how do I stop it?"
    marked = marked_tokens(question, "en")
    assert ("paying", False) in marked and ("stop", False) in marked
    assert not any(negated for _, negated in marked)
    assert order(build(), question)[0] == "cancel-subscription"
    marked = marked_tokens("we do not want to continue the newsletter", "en")
    assert [t for t, _ in marked][:3] == ["we", "stop", "the"]
    # "Rather than keep paying" still turns paying away: the customer wants the other thing.
    marked = marked_tokens("I'd pause rather than keep paying", "en")
    assert "stop" not in [t for t, _ in marked] and ("paying", True) in marked
