"""How a latest message relates to the conversation: a new request of its own, or a follow-up."""

from __future__ import annotations

import pytest

from bot.agent.followups import leans_on_earlier, opens_new_topic


@pytest.mark.parametrize(
    "text",
    [
        "thanks, but I also need to change the card it comes out of",
        "great. we also want to add a second address",
        "I'd also like to know how to get a receipt",
        "we would also like to move the date",
        "another question: can I pay by bank transfer?",
        "ok, one more thing, where do I find my invoices",
        "a different question, how do I reset the password",
        "on a separate note, can my partner use the account?",
        "while I'm here, how do I change my email",
        "something else: the app logs me out every day",
    ],
)
def test_a_request_of_its_own_opens_a_new_topic(text: str) -> None:
    assert opens_new_topic(text)


@pytest.mark.parametrize(
    "text",
    [
        # More about the same thing: the follow-up reads with the conversation.
        "thanks! also do my miles disappear while it's frozen",
        "and what if I'm renting?",
        "I also need it done by Friday",
        "we'd also like them to stay on the same plan",
        "can I add another card?",
        "I tried one more time and it still fails",
        "it says something else now",
        "while I'm at work nobody can take the delivery",
        "I also have the same problem on my phone",
    ],
)
def test_ordinary_sentences_do_not_open_a_new_topic(text: str) -> None:
    assert not opens_new_topic(text)


@pytest.mark.parametrize(
    ("text", "leans"),
    [
        ("and what about the API?", True),
        ("does that apply to annual plans too?", True),
        ("how do I stop it?", True),
        ("where do I add our company VAT number for invoices?", False),
    ],
)
def test_a_follow_up_leans_on_a_link_word_or_a_closing_pronoun(text: str, leans: bool) -> None:
    assert leans_on_earlier(text) is leans
