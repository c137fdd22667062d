"""Wrapping up in the words customers use: thanks said casually, solved said as one word, a problem
that went away on its own; and the ordinary sentences with the same words that must not close."""

from __future__ import annotations

import pytest

from bot.agent.intents import Intent, asks_something, read


@pytest.mark.parametrize(
    "text",
    [
        "ok got it, sorted. have a good one",
        "great, it's sorted now!",
        "fixed, cheers",
        "oh it just went through now, sorry for the bother!",
        "the payment finally went through",
        "nvm he literally just showed up lol thanks",
        "nevermind, the courier just turned up",
        "the parcel has just arrived, all good",
    ],
)
def test_solved_in_casual_words(text: str) -> None:
    reading = read(text)
    assert reading.has(Intent.SOLVED) and not asks_something(reading)


@pytest.mark.parametrize(
    "text",
    ["ok submitted it and got the credit, thats fine thank u", "thanku so much", "tysm!"],
)
def test_thanks_in_casual_spelling(text: str) -> None:
    assert read(text).has(Intent.THANKS)


@pytest.mark.parametrize(
    "text",
    [
        "not sorted",
        "can i get my orders sorted by date?",
        "is it all done automatically?",
        "it went through twice, I was charged double",
        "the driver finally arrived and the food was cold",
        "it finally arrived but the box was crushed",
        "he just showed up at the wrong address",
        "my parcel arrived",
        "the payment never went through",
    ],
)
def test_ordinary_sentences_with_the_same_words_are_not_solved(text: str) -> None:
    assert not read(text).has(Intent.SOLVED)


def test_a_question_beside_it_keeps_the_question() -> None:
    reading = read("the payment went through. how do I get the receipt?")
    assert asks_something(reading) and "receipt" in reading.question


@pytest.mark.parametrize(
    "text",
    [
        "yes i checked the routing and account number twice, they're right",
        "I've double-checked the address and it's correct",
        "we verified the bank details and they are the same",
    ],
)
def test_what_they_were_told_to_check_is_right_so_not_solved(text: str) -> None:
    assert read(text).has(Intent.NOT_SOLVED)


@pytest.mark.parametrize("text", ["bye", "ok thats all i needed, bye", "goodbye!"])
def test_a_goodbye_alone_acknowledges(text: str) -> None:
    assert read(text).has(Intent.ACKNOWLEDGED)


@pytest.mark.parametrize(
    "text",
    [
        "i did that, it keeps saying transaction declined",
        "i updated the card and pressed retry payment like it says, still declined 3 times",
        "reinstalled it, it keeps crashing",
        "tried again, still declined",
    ],
)
def test_the_same_failure_after_the_steps_is_not_solved(text: str) -> None:
    assert read(text).has(Intent.NOT_SOLVED)


@pytest.mark.parametrize(
    "text",
    ["it keeps me logged in, thanks", "the app keeps my card details saved, thanks", "keep it up!"],
)
def test_keep_without_a_failure_is_not_unsolved(text: str) -> None:
    assert not read(text).has(Intent.NOT_SOLVED)


@pytest.mark.parametrize(
    "text",
    [
        "ahh so it was the 5ghz thing, gave the 2.4 its own name and its connected now. cheers",
        "they're all online again",
        "sorry wrong chat, meant to message my electricity company haha",
        "oops, wrong window",
    ],
)
def test_back_as_it_should_be_or_the_wrong_chat_is_solved(text: str) -> None:
    reading = read(text)
    assert reading.has(Intent.SOLVED) and not asks_something(reading)


@pytest.mark.parametrize(
    "text",
    [
        "it's connected now but the app still says offline",
        "is it online now?",
        "I got charged for the wrong tab in the app",
    ],
)
def test_connected_but_still_failing_or_asked_is_not_solved(text: str) -> None:
    reading = read(text)
    assert not reading.has(Intent.SOLVED) or asks_something(reading)
