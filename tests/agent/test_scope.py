"""Messages that are no customer's support question, in the words people write them in, and the
customers' questions with the same words."""

from __future__ import annotations

import pytest

from bot.agent.intents import Intent, offered_thing, read


@pytest.mark.parametrize(
    "text",
    [
        "we're a dental practice with 9 staff after business broadband with an SLA, can you quote",
        "i own a cafe in the high street and want a quote for 40 meal boxes a week",
        "i run a small gym in ghent and would love to host one of your lockers, who do i ask",
        "hi, journalist at the evening post, could someone comment on the outage",
        "who is your press office contact? writing about parcel theft",
        "we're a corporate travel agency and want a rate for 200 rentals a year",
        "i run a gym and would like to sell your meal boxes to members, wholesale price?",
    ],
)
def test_a_business_asking_for_a_quote_or_to_host_or_the_press(text: str) -> None:
    assert read(text).has(Intent.BUSINESS_ENQUIRY)


@pytest.mark.parametrize(
    "text",
    [
        "how do i get a quote for moving my broadband to a new house?",
        "i run a small business from home, can i put the invoices in the company name?",
        "is there a locker near the journalist school on main street?",
        "how do i press the reset button",
        "can i host a dinner party with the family box, how many does it feed?",
        "we're a family and want to know about the family plan",
        "do you offer a corporate rate for business travellers?",
        "i run a small business and need invoices with vat",
    ],
)
def test_a_customer_asking_about_quotes_or_hosting_is_no_business(text: str) -> None:
    assert not read(text).has(Intent.BUSINESS_ENQUIRY)


@pytest.mark.parametrize(
    "text", ["r u hiring drivers in leeds?", "are u still hiring couriers? got my own van"]
)
def test_a_job_enquiry_in_text_speak_is_out_of_scope(text: str) -> None:
    assert read(text).has(Intent.OUT_OF_SCOPE)


def test_an_offer_asked_in_text_speak() -> None:
    assert offered_thing("do u do sim only deals?") == "sim only"
