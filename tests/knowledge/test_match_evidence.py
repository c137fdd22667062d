"""What the index tells a responder about a match: its evidence, negation, small numbers and a
customer's word for what the help center names differently."""

from __future__ import annotations

from bot.knowledge.index import ChunkRecord, SearchIndex

ARTICLES = {
    "ending-a-ride": ("Ending a ride", "Park in a green zone and tap End. It stops."),
    "ride-prices": (
        "Ride prices",
        "A ride costs 1 EUR; a ride over 30 minutes costs more per ride.",
    ),
    "reserving": ("Reserving", "Tap Reserve to hold it for 15 minutes."),
    "bike-types": ("Bike types", "City bike, cargo bike and e-bike: every bike has a basket."),
    "plans": ("Changing your plan", "Downgrade from Settings → Plan."),
    "cancelling": ("Cancelling your subscription", "Cancel from Settings → Subscription."),
    "deleting": ("Deleting your account", "Delete it from Settings → Privacy."),
    "profile": ("Your account profile", "Your account name and photo are on your account page."),
    "age": ("Who can ride", "Riders must be 16 or older."),
}


def _index() -> SearchIndex:
    return SearchIndex(
        [
            ChunkRecord(n, doc, 0, title, title, text, f"{doc}.md", "h")
            for n, (doc, (title, text)) in enumerate(ARTICLES.items())
        ]
    )


def _first(index: SearchIndex, question: str) -> str:
    hits = index.search(question)
    return hits[0].chunk.document_id if hits else ""


def test_evidence_says_how_much_of_the_question_the_article_holds() -> None:
    hits = _index().search("how do I cancel my subscription")
    evidence = hits[0].evidence
    assert evidence is not None
    assert hits[0].chunk.document_id == "cancelling"
    assert evidence.known_share == 1.0 and evidence.coverage == 1.0 and evidence.specific
    assert evidence.lead > 0.5
    off_topic = _index().search("best banana bread recipe for my subscription")[0].evidence
    assert off_topic is not None and off_topic.known_share <= 0.25
    assert set(off_topic.missing) >= {"banana", "bread", "recipe"}


def test_a_customers_word_for_what_the_article_names_otherwise() -> None:
    index = _index()
    assert _first(index, "how do I finish my ride?") == "ending-a-ride"
    assert _first(index, "please remove my account") == "deleting"
    assert _first(index, "can I book one for later?") == "reserving"


def test_a_refused_alternative_weighs_less_than_what_is_wanted() -> None:
    index = _index()
    assert _first(index, "I don't want to cancel my subscription, I just want to downgrade") == (
        "plans"
    )
    # With no contrast the refusal is the topic itself.
    assert _first(index, "I don't want my subscription to renew") == "cancelling"


def test_a_small_number_says_little_about_the_topic() -> None:
    """ "15" in "my son is 15" is the customer's own case; an error code is not."""
    index = SearchIndex(
        [
            ChunkRecord(
                1, "r", 0, "Reserving", "Reserving", "Hold it 15 minutes. Error 429.", "r", "h"
            )
        ]
    )
    weights = {t.word: t.weight for t in index.query_terms("my son is 15 and I get 429")}
    assert weights["15"] < 0.5 and weights["429"] == 1.0


def test_a_word_the_table_names_otherwise_is_known_as_its_equivalent() -> None:
    """The evidence a responder decides on agrees with the ranking: "book" is "reserve"."""
    hits = _index().search("how do I book one?")
    evidence = hits[0].evidence
    assert hits[0].chunk.document_id == "reserving" and evidence is not None
    assert evidence.known_share == 1.0 and "book" not in evidence.missing
    assert evidence.coverage > 0.5


def test_coverage_weighs_a_running_text_word_less_as_the_ranking_does() -> None:
    index = SearchIndex(
        [
            ChunkRecord(1, "pods", 0, "Boost pods", "Boost pods", "A pod costs more.", "p", "h"),
            ChunkRecord(2, "fees", 0, "Fees", "Fees", "An extra fee, extra charges.", "f", "h"),
        ]
    )
    [pods] = [h for h in index.search("an extra pod") if h.chunk.document_id == "pods"]
    [extra] = [t for t in index.query_terms("an extra pod") if t.word == "extra"]
    [pod] = [t for t in index.query_terms("an extra pod") if t.word == "pod"]
    assert pods.evidence is not None
    # "extra" is in no title or heading: it counts 0.8 of its weight, in the ranking and here.
    expected = pod.idf / (pod.idf + 0.8 * extra.idf)
    assert abs(pods.evidence.coverage - round(expected, 4)) < 1e-4


def test_a_contraction_typed_without_its_apostrophe_is_no_unknown_word() -> None:
    # "cant" and "dont" say no more than "can't" and "don't": not words the help center
    # lacks, which would make the question look partly out of scope and lower the confidence.
    index = _index()
    typed = index.search("i cant cancel my subscription, dont know why")[0]
    proper = index.search("i can't cancel my subscription, don't know why")[0]
    assert typed.chunk.document_id == proper.chunk.document_id == "cancelling"
    assert typed.evidence is not None and proper.evidence is not None
    assert typed.evidence.known_share == proper.evidence.known_share == 1.0
    assert typed.evidence.missing == proper.evidence.missing == ()
    assert typed.confidence == proper.confidence
