"""Matters a person handles whatever the articles say, in any business's customers' words, and
the ordinary questions with the same words."""

from __future__ import annotations

import pytest

from bot.agent.intents import Intent, read


@pytest.mark.parametrize(
    "text",
    [
        "your courier was screaming at me at my door and threatened me. i don't feel safe",
        "the driver harassed me and kept messaging me after the trip",
        "the engineer was aggressive and I felt unsafe in my own home",
        "I did not feel safe with that instructor",
        "one of your staff groped me",
    ],
)
def test_a_threat_to_the_customers_safety(text: str) -> None:
    assert read(text).has(Intent.SAFETY)


@pytest.mark.parametrize(
    "text",
    [
        "is it safe to save my card in the app?",
        "the app threatened to delete my data if I don't verify",
        "do you feel the new plan is safe for kids?",
        "how do I keep my account safe?",
        "my laptop died last week and now the videos won't play",
    ],
)
def test_ordinary_words_are_no_threat(text: str) -> None:
    assert not read(text).has(Intent.SAFETY)


@pytest.mark.parametrize(
    "text",
    [
        "you closed my account without telling me why, i want an explanation and my money sent to me",
        "you've blocked my card for no reason",
        "you guys suspended my membership out of nowhere",
        "I want an explanation for this",
    ],
)
def test_a_step_the_company_took_on_their_account_is_their_own_case(text: str) -> None:
    assert read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "can you close my account?",
        "if you block my card can I still pay my bills?",
        "you closed my account, can I open a new one?",
        "how do I get an explanation of my bill?",
        "I want an explanation of the fees on my statement",
    ],
)
def test_asking_how_the_company_acts_is_a_how_to(text: str) -> None:
    assert not read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "i raised a chargeback last week, roughly how long does that usually take",
        "I opened a chargeback on Monday, what happens next",
    ],
)
def test_a_chargeback_reported_with_a_question_is_no_complaint(text: str) -> None:
    assert not read(text).has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    [
        "sort this out or I'm doing a chargeback with my bank",
        "if you don't refund me I'll do a chargeback, how about that",
    ],
)
def test_a_chargeback_announced_is_still_a_complaint(text: str) -> None:
    assert read(text).has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    [
        "the door swung open and hit my son in the face",
        "the lid came off and he's got a nasty cut on his hand",
        "the charger smells of burning and it's hot to touch",
        "the screen sparked when i pressed it",
        "there are bare wires poking out of the box by the gate",
        "the line is hanging down across the road at head height",
        "im partially sighted and cant read the code on the screen, nobody is around",
        "i'm leaving because of domestic abuse and he has the login",
        "my ex knows the code, i'm scared he'll be there when i go",
        "mum's oxygen concentrator alarm needs the line and it's been down since friday",
        "glass in the box, my son cut his hand and we're at a&e",
        "the whole family got food poisoning from the fish",
        "the tyre is bald, it's not safe to drive",
        "stranded on the hard shoulder with two kids and nobody answers",
        "my husband is violent and the account is in his name",
        "im hard of hearing and cant use the phone line to change it",
        "im on dialysis at home and rely on the deliveries",
    ],
)
def test_someone_hurt_a_danger_or_a_customer_who_cannot_manage_alone(text: str) -> None:
    assert read(text).has(Intent.SAFETY)


@pytest.mark.parametrize(
    "text",
    [
        "I fell off the bike and hurt my wrist, what do I do now",
        "my dog hurt his leg, am i covered?",
        "is the locker wheelchair accessible?",
        "will my nan's personal alarm still work in a power cut?",
        "how do i report abuse of a discount code",
        "the ice packs melted, is the food still ok?",
        "can i smoke in the car?",
        "is the food safe if the box was left out all day?",
        "what do i do if i break down on the motorway?",
        "i'm deaf, is there a text relay service?",
        "my dog was taken to the vet hospital, can i claim?",
    ],
)
def test_the_same_words_in_an_ordinary_question_are_no_danger(text: str) -> None:
    assert not read(text).has(Intent.SAFETY)


@pytest.mark.parametrize(
    "text",
    [
        "i honestly can't cope anymore with these debts, i don't see the point in anything",
        "sometimes i think everyone would be better off without me",
        "i want to end it all, the bills just keep coming",
        "I can't go on like this any more",
    ],
)
def test_a_customer_in_crisis_is_a_matter_for_a_person(text: str) -> None:
    assert read(text).has(Intent.SAFETY)


@pytest.mark.parametrize(
    "text",
    [
        "my mum is 89 and on a prepayment meter, it ran out last night and she has no heating",
        "we have a newborn and no hot water since yesterday",
        "no electricity at my dad's, he's 92 and lives alone",
    ],
)
def test_someone_who_cannot_manage_without_the_service_now(text: str) -> None:
    assert read(text).has(Intent.SAFETY)


@pytest.mark.parametrize(
    "text",
    [
        "one of the trainers keeps making comments about my body and it makes me uncomfortable",
        "the instructor made inappropriate comments during my class",
        "I want to complain about one of your drivers, he was shouting at other cars",
    ],
)
def test_what_a_member_of_staff_did_is_a_complaint(text: str) -> None:
    assert read(text).has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    [
        "what's the point of the premium plan?",
        "I can't cope with how slow the app is, how do I clear the cache?",
        "will my heating still work in a power cut?",
        "is there a discount for people aged 65 and over?",
        "how do i complain about a driver?",
        "can a trainer comment on my form during the session?",
        "my baby monitor app keeps asking for a password, how do I save it?",
    ],
)
def test_the_same_words_in_ordinary_questions(text: str) -> None:
    reading = read(text)
    assert not reading.has(Intent.SAFETY) and not reading.has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    [
        ("my husband just took double his heart tablets by mistake and he's feeling really dizzy "
         "and his chest hurts what do i do"),
        "my son accidentally swallowed two of my pills",
        "she collapsed after her injection",
        "i cant breathe properly since the new inhaler",
        "i have chest pains since the first dose",
        "he had a severe allergic reaction to the meal on the flight",
    ],
)
def test_a_medical_emergency_is_a_matter_of_safety(text: str) -> None:
    assert read(text).has(Intent.SAFETY)


@pytest.mark.parametrize(
    "text",
    [
        "can I take paracetamol with my antibiotics?",
        "what happens if I miss a dose?",
        "I ordered the wrong tablets by mistake, can I return them?",
        "my chest freezer stopped working",
        "does the inhaler help you breathe at night?",
        "what if I have an allergic reaction?",
    ],
)
def test_questions_about_medicines_are_no_emergency(text: str) -> None:
    assert not read(text).has(Intent.SAFETY)
