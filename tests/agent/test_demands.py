"""What a customer claims or demands of the company, in any business's customers' words, and
the how-to questions with the same words (those an article answers)."""

from __future__ import annotations

import pytest

from bot.agent.intents import Intent, read


@pytest.mark.parametrize(
    "text",
    [
        "third outage this week. reporting you lot to ofcom first thing tomorrow",
        "if this isn't sorted by monday i'm going straight to the regulator",
        "im writing to the ombudsman and the local papers about this",
        "keep ignoring me and i'll be putting this all over trustpilot",
        "leaving one star reviews everywhere i can, absolute cowboys",
        "telling everyone at work to avoid you",
        "if it isn't back by monday im disputing it with my credit card company",
    ],
)
def test_a_threat_to_go_to_a_regulator_or_public_reviews_is_a_complaint(text: str) -> None:
    assert read(text).has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    [
        "how do i make a complaint?",
        "is lumen regulated by ofcom?",
        "how do i leave a review of my driver?",
        "where can i read reviews of the meal plans",
        "tell everyone in the house the wifi password, how do i share it",
    ],
)
def test_asking_how_to_complain_or_review_is_no_complaint(text: str) -> None:
    assert not read(text).has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    [
        "the fitter cracked two floor tiles and i want the repair bill covered",
        "your driver backed into my garden wall this morning, who is paying for the damage",
        "the box leaked all over my new carpet, who's going to pay for this",
        "got food poisoning and spent the night in A&E, you will pay my hospital bill",
        "where do i send the garage bill? your van clipped my wing mirror",
        "i slipped on the ice pack your courier dropped on my step, who do i claim against",
        "your technician drilled into a cable in the wall and now half the house has no power",
    ],
)
def test_a_claim_for_damage_the_company_did_is_a_complaint(text: str) -> None:
    assert read(text).has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    [
        "what if my parcel is damaged?",
        "who pays for return postage if the item is faulty?",
        "the courier damaged my parcel, how do i report it",
        "is accidental damage to the car covered?",
        "does the policy pay the vet bill if my dog is hurt?",
    ],
)
def test_asking_how_damage_is_handled_is_no_claim(text: str) -> None:
    assert not read(text).has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    [
        "got an email that my password was reset, that wasn't me",
        "there's a premium add-on on my bill that i never ordered",
        "two bookings in my history i never requested and my card was charged for both",
        "my email was changed but i never did that, now i cant log in",
        "i think someone's been in my account, my address is different",
        "my login email was changed, wasnt me",
        "someone booked a car on my account in spain last night",
    ],
)
def test_activity_they_did_not_make_is_their_own_case(text: str) -> None:
    assert read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "someone collected my parcel?? what do i do",
        "someone phoned saying they were from you and asked for the code, is that legit?",
        "got a weird £1 charge from a shop i didnt book with, is someone using my card",
        "pretty sure the neighbours are using my wifi, how do i kick them off",
        "how do i see which devices are signed in to my account",
        "can someone else book on my account?",
        "it wasnt clear what the fee was for, can you explain",
    ],
)
def test_a_worry_an_article_answers_is_no_account_case(text: str) -> None:
    assert not read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "waive the late payment fee, the direct debit failed on your side",
        "refund the delivery charge from friday please",
        "reverse that cancellation fee. ive been a customer for 8 years",
        "credit my account for the three days without service",
        "i have two profiles on different emails, can you merge them",
        "take the £60 cleaning charge off, the car was spotless",
        "cancel the late return fee, your desk was closed",
        "stop the payments now, i want every penny back",
    ],
)
def test_a_step_on_their_own_record_demanded_is_their_own_case(text: str) -> None:
    assert read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "how do refunds work?",
        "can I merge two accounts?",
        "how much is the cancellation fee?",
        "refund the difference?",
        "will you refund the delivery fee if it's late?",
        "will you take the fee off if i return it early?",
        "how do i cancel the late fee? it was a mistake",
        "is the cleaning fee included?",
    ],
)
def test_how_refunds_and_fees_work_is_a_how_to(text: str) -> None:
    assert not read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "how do i make a complaint?",
        "how can I raise a complaint about a driver",
        "are repair costs covered if i scratch the car?",
        "who pays the repair costs if the hire car breaks down?",
    ],
)
def test_how_complaints_and_repairs_work_is_a_how_to(text: str) -> None:
    assert not read(text).has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    [
        "why was i charged twice on the 1st?? two lots of 34.99 came out of my account",
        "you've taken two direct debits off me this month, I need one of them refunded",
        "looks like I got double charged for my order, £12.99 each time",
        "the app billed me twice for the same booking yesterday",
    ],
)
def test_charged_more_than_once_is_their_own_case(text: str) -> None:
    assert read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "whats my membership number? need it for a work benefits form",
        "what is the account number for the flat on Hollis Road?",
        "what's my current balance",
        "did my payment on the 3rd go through?",
        "has my refund from last week been processed?",
    ],
)
def test_their_own_records_details_are_looked_up_by_a_person(text: str) -> None:
    assert read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "Please delete all personal data you hold on me. Treat this as a subject access request.",
        "I'm exercising my right to be forgotten, erase my account",
        "this is a DSAR: every record you have on me within 30 days",
    ],
)
def test_a_formal_data_protection_request_is_handled_by_a_person(text: str) -> None:
    assert read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "what happens if I'm charged twice by mistake?",
        "I was charged twice this month?",
        "can i pay twice a month?",
        "where do i find my membership number?",
        "how long does a payment take to go through?",
        "how do I download a copy of my data?",
        "i want all my personal data wiped under gdpr, how do i get that done",
        "how do I see the data you hold on me?",
        "Under GDPR I want a copy of all personal data you hold about me",
        "how do I make a subject access request?",
    ],
)
def test_how_tos_with_the_same_words(text: str) -> None:
    assert not read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "the money came out yesterday and i paid my whole staff double. i need you to pull it back NOW",
        "need a corrected certificate for an employee, the name is misspelt. can you process that",
        "you charged us again after we cancelled in september",
        "got a letter from the IRS saying our return was filed late and there's a $380 penalty",
        "debt collectors keep ringing me about a bill i already paid",
        "there's a $412 charge from you on our card this month?? we're on the small plan. what is this",
        "I don't recognise this charge of £19.99 on my statement",
        "my employer hasnt paid me in 2 months. can you tell me if they actually ran payroll or not",
    ],
)
def test_a_step_or_a_check_only_staff_can_do_on_their_record(text: str) -> None:
    assert read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "I need you to explain the fees on my bill",
        "can you tell me if the plan includes phone support?",
        "can you process refunds to a different card?",
        "what happens if I get a letter about a late payment?",
        "what is a $5 fee on my bill for?",
        "got a letter from italian police about a speeding fine AND you charged me €30 on top?? what is that for",
        "what happens if I cancel after I've been charged?",
    ],
)
def test_how_tos_about_charges_letters_and_checks(text: str) -> None:
    assert not read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "none of my employees got paid today. this is unacceptable, people have rent due",
        "that's outrageous, three weeks and nothing",
        "you charged us again. if someone doesn't call me back today I'm disputing it with amex",
    ],
)
def test_outrage_and_a_dispute_with_the_card_are_complaints(text: str) -> None:
    assert read(text).has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    ["is it acceptable to pay a few days late?", "that's ridiculous, how do I reset it?",
     "can i dispute a charge with my bank?"],
)
def test_frustration_with_a_how_to_is_no_complaint(text: str) -> None:
    assert not read(text).has(Intent.COMPLAINT)


@pytest.mark.parametrize(
    "text",
    [
        # A death, and the account the one who died left.
        ("my mother passed away in february. how do I close her account and am I responsible "
         "for anything she owed?"),
        ("my mum passed away last month and she banked with you. what do i need to do with her "
         "account"),
        "my dad died in march and his membership is still being charged",
        # A debt collector or their credit file.
        "got a letter from some collection agency saying I owe $127 and it's going on my credit",
        "you handed my old bill to a debt recovery firm without a single reminder",
        "the missed payment has gone on my credit file and I never got a notice",
        # Their record to be put right, told.
        "now im getting a bill saying its lost and i owe $31. this is ridiculous fix it",
        "I never got a single notice about this!! I need this sorted out now",
        "the VAT number on my invoice is wrong and my tax advisor needs it fixed",
        # A case stuck for weeks.
        "ive been #3 on a hold for 7 weeks now and it hasnt moved at all",
        "requested a transfer like 2 months ago and never heard anything",
        "no updates since then and it has been three weeks",
        "can you check where it is? its for my dissertation",
        "emailed twice and nobody got back to me",
        "i was told it would be fixed by friday",
        "can you check on your end",
        "the repair is still outstanding after 3 weeks",
        "its been 2 weeks and no news from anyone",
        "the account holder has died and the direct debit still goes out",
        # A change on their record on someone else's say-so.
        "can you change my sertraline dose on my repeat to 100mg, my gp said it was ok",
        "please add the extra tenant to the flat, the landlord said it's fine",
        # Activity that was not theirs; what came is someone else's.
        "theres an order on my account for diazepam that i never placed",
        "my ex boyfriend still knows my pin and keeps putting holds on my account",
        "someone still knows my password",
        "the label has someone elses name on it",
        # A document in writing for a third party; the second factor lost for good.
        "the building manager wants a written confirmation for the insurance",
        "lost my phone with the authenticator and never saved those backup code things",
        # The steps done to the end, first thing said.
        ("did the whole router restart thing, even factory reset it, app still says offline for "
         "4 days now"),
    ],
)
def test_a_case_of_their_own_in_the_customers_own_words(text: str) -> None:
    assert read(text).has(Intent.ACCOUNT_SPECIFIC)


@pytest.mark.parametrize(
    "text",
    [
        "my dad passed away last month and the internet is in his name, what do I need to do",
        ("my dad passed away last month and theres loads of his tablets in the house, what should "
         "i do with them"),
        "my cat passed away yesterday, how do i tell you and close her policy",
        "will a missed payment affect my credit score?",
        "will it be reported on my credit file?",
        "how do collections of parcels work at the locker?",
        "the app crashes when I open it, how do I fix it?",
        "I need to sort out my notification settings",
        "how long does a hold usually take? mine is a few weeks old",
        "can I cancel an order I placed by mistake?",
        "where can I check where my parcel is?",
        "can I get a letter confirming my cover from the app?",
        "where do I find my backup codes?",
        "what if I lost my backup codes?",
        "I restarted it and it's still slow, what else can I try?",
        "even after a factory reset is my data still on it?",
        "I want you to remove all of my data. I no longer use your product. What do I need to do.",
        "someone else's parcel was left in my locker, what do I do?",
        "what if no one replies to my message?",
        "I was told I need photo ID, what counts?",
        "how many weeks until I get a reply?",
        "my doctor said it's fine to take with food, how do I order a repeat?",
        "my father passed away and his flights are booked for june, can i cancel them?",
    ],
)
def test_how_to_questions_with_those_words_are_no_case_of_their_own(text: str) -> None:
    assert not read(text).has(Intent.ACCOUNT_SPECIFIC)
