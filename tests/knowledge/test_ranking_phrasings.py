"""Ranking: general support phrasings customers use ("turned down", "gone up", "payday"), a
question in a language no article is written in, and the equivalents of a word the knowledge
base never uses (``bot.knowledge.vocabulary``, ``bot.knowledge.crosslingual``,
``bot.knowledge.index``). Small synthetic help centers, in no particular domain."""

from __future__ import annotations

import pytest

from bot.knowledge import index as index_module
from tests.knowledge.articles import Articles, build_index, first

REQUESTS: Articles = {
    "declined-requests": (
        "If a request is declined",
        [
            ("Common reasons", "A request is declined when the order is older than 90 days."),
            ("Asking for a review", "Reply to the decision email and a second person reviews it."),
        ],
    ),
    "making-a-request": (
        "Making a request",
        [
            (
                "Send a request",
                (
                    "Open Orders, choose the order and tap Request. Add a photo of the receipt and "
                    "say what went wrong. We answer every request within three days, and you can "
                    "see the status of your request under Orders."
                ),
            ),
        ],
    ),
    "renewal-prices": (
        "Your renewal",
        [
            ("Why prices increase", "Costs rise every year, so the price increases at renewal."),
            ("Renewal letter", "We send a renewal letter three weeks before your renewal date."),
        ],
    ),
    "account-letters": (
        "Letters and emails we send",
        [
            (
                "Letters",
                (
                    "We send a letter when your details change, when your account is opened and "
                    "once a year with a summary of your account. Every letter is in the app too."
                ),
            ),
        ],
    ),
    "payment-date": (
        "Changing your payment date",
        [("Payment date", "Pick a new payment date under Billing. It applies next month.")],
    ),
    "moving-house": (
        "Moving house",
        [("New address", "When you move, update your address under Profile before the move.")],
    ),
}


@pytest.mark.parametrize(
    ("question", "article"),
    [
        # "turned down" is how customers say declined.
        ("they turned down my request, what can i do", "declined-requests"),
        # "gone up" / "went up" is how customers say the price increased.
        ("my renewal letter came and it's gone up a lot, why", "renewal-prices"),
        ("the letter says it went up again this year", "renewal-prices"),
        # "payday" is a payment date.
        ("my payday is the 20th, can you take it after that", "payment-date"),
    ],
)
def test_a_customers_phrasing_finds_the_article_that_names_it(question: str, article: str) -> None:
    assert first(build_index(REQUESTS), question) == article


SERVICES: Articles = {
    "when-a-member-dies": (
        "When a member dies",
        [("What to do", "We are sorry for your loss. Tell us and we close the membership.")],
    ),
    "video-calls": (
        "Video calls with an adviser",
        [("Start a call", "Open the app and tap Call. An adviser answers within minutes.")],
    ),
    "ending-your-membership": (
        "Cancelling your membership",
        [("Cancel", "Cancel under Account. Your membership runs to the end of the month.")],
    ),
    "opening-hours": (
        "Opening hours",
        [
            (
                "Hours",
                (
                    "The club is open from 6am. On Saturday and Sunday it opens at 8am, and the "
                    "adviser desk is open until 6pm. Sleep rooms are open all night."
                ),
            ),
            ("Holidays", "On public holidays the club is open from 8am until 4pm."),
        ],
    ),
}


@pytest.mark.parametrize(
    ("question", "article"),
    [
        # "put to sleep" is said of a death, like "passed away".
        ("we had to have him put to sleep on saturday, what now", "when-a-member-dies"),
        # Talking to someone through the service is a call.
        ("is there someone i can talk to through you on saturday", "video-calls"),
        # "end" a membership is cancelling it.
        (
            "found it cheaper somewhere else, how do i end mine before the holidays",
            "ending-your-membership",
        ),
    ],
)
def test_everyday_phrasings_of_death_calls_and_ending(question: str, article: str) -> None:
    assert first(build_index(SERVICES), question) == article


ENGLISH: Articles = {
    "failed-payments": (
        "If a payment fails",
        [("What happens", "A failed payment is retried after three days; it fails twice at most.")],
    ),
    "cancelling": (
        "Cancelling your plan",
        [("Cancel", "Cancel under Account, Plan. You can cancel at any time.")],
    ),
    "travelling-abroad": (
        "Travelling abroad",
        [
            (
                "Before you travel",
                "Tell us before you travel abroad; your plan works in 30 countries.",
            )
        ],
    ),
}


def test_a_question_in_a_language_no_article_uses_is_not_typo_corrected() -> None:
    index = build_index(ENGLISH)
    # "fais" is French ("comment je fais" = "how do I"), not a typo of "fails".
    question = "bonjour, comment je fais pour résilier ? merci"
    assert "fail" not in {t.term for t in index.query_terms(question) if t.known}
    assert first(index, question) == "cancelling"
    # An English question's typo is still corrected.
    assert first(index, "my paymnet failss") == "failed-payments"


def test_travel_abroad_in_another_language_finds_the_english_article() -> None:
    index = build_index(ENGLISH)
    assert first(index, "Ich mache eine Reise ins Ausland, was muss ich tun?") == (
        "travelling-abroad"
    )
    assert first(index, "¿Qué tengo que hacer antes de viajar al extranjero?") == (
        "travelling-abroad"
    )


STANDS_IN: Articles = {
    "cancelling": (
        "Cancelling",
        [("Cancel online", "Cancel under Account. Cancelled plans end with the paid month.")],
    ),
    "plan-levels": (
        "Plan levels",
        [
            ("Basic plan", "The basic plan includes one user."),
            ("Team plan", "The team plan includes ten users and a shared plan history."),
        ],
    ),
}


def test_a_word_the_knowledge_base_never_uses_searches_its_equivalents_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "terminate" is never used: its equivalent "cancel" is all the question means by it.
    question = "how can i terminate my team plan"
    assert first(build_index(STANDS_IN), question) == "cancelling"
    monkeypatch.setattr(index_module, "MISMATCH_EXPANSION_WEIGHT", 0.8)
    assert first(build_index(STANDS_IN), question) == "plan-levels"


AMOUNTS: Articles = {
    "your-deposit": (
        "Your deposit",
        [("How much", "The deposit is £99 per booking. It is paid back within 10 days.")],
    ),
    "paying-at-the-desk": (
        "Paying at the desk",
        [("Every visit", "Every time you visit, pay at the desk by card or cash.")],
    ),
}


def test_an_amount_the_knowledge_base_states_counts_as_a_word() -> None:
    # "£99" is the knowledge base's own figure, not the customer's incidental number.
    question = "is the £99 taken off every time"
    assert first(build_index(AMOUNTS), question) == "your-deposit"
    # A bare small number still counts little: "10 times" is the customer's own case.
    assert first(build_index(AMOUNTS), "i visit 10 times, do i pay every time") == ("paying-at-the-desk")
