"""The whole human side in one real headless Chromium, as issue 16 asks: a visitor escalates in
the widget; an operator signed in to the console (a second, separate browser context: their own
cookies) sees the thread in the Inbox within 2 s, opens it and replies from the console's reply
form; the visitor sees the reply live; the console's transcript shows the person's message in
order; the operator hands back from the console (the button is there only while a person holds
the thread) and the bot answers the visitor's next message.
The console's own fetch() calls go through the session cookie and the CSRF token; the same call
without the token is refused (403). Real engine, offline responder, bundled knowledge."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, expect

from tests.browser.conftest import profile
from tests.browser.test_console import signed_in
from tests.browser.test_web_chat import answers, open_chat, say
from tests.http.harness import Daemon, json_call, running


@pytest.fixture
async def daemon(sqlite_url: str) -> AsyncIterator[Daemon]:
    async with running(sqlite_url, real_engine=True) as started:
        yield started


@pytest.fixture
async def operator_context(browser: Browser,
                           request: pytest.FixtureRequest) -> AsyncIterator[BrowserContext]:
    """The operator's own profile: the visitor's widget cookie is not theirs, nor theirs the
    visitor's."""
    async with profile(browser, request, "-operator") as ctx:
        yield ctx


async def test_an_operator_answers_a_web_escalation_from_the_console_and_hands_it_back(
    context: BrowserContext, operator_context: BrowserContext, daemon: Daemon
) -> None:
    operator = await signed_in(operator_context, daemon)
    await expect(operator.get_by_text("Nothing waiting")).to_be_visible()

    # The visitor asks, gets an answer, then asks for a person.
    visitor = await open_chat(context, daemon)
    await say(visitor, "How do I reset my password?")
    await expect(answers(visitor).last).to_contain_text("Forgot password")
    await say(visitor, "I want to talk to a person")
    banner = visitor.locator("#sb-state")
    await expect(banner).to_contain_text("a person from our team has this conversation")
    escalated_at = time.monotonic()

    # The console's Inbox shows it within 2 s, without a reload.
    row = operator.locator("tr[data-thread]")
    await expect(row).to_have_count(1, timeout=2000)
    assert time.monotonic() - escalated_at < 2.0
    await expect(row).to_contain_text("I want to talk to a person")
    thread_id = await row.get_attribute("data-thread")
    await row.get_by_role("link").click()
    await expect(operator.get_by_role("region", name="Transcript")).to_be_visible()
    assert operator.url.endswith(f"/console/threads/{thread_id}")
    hand_back = operator.get_by_role("button", name="Hand back to the bot")
    await expect(hand_back).to_be_visible()  # a person holds it: it can be handed back

    # What the operator opened to read stays open when the page refreshes the transcript.
    passages = operator.locator(".msg.bot").first.locator("details").filter(
        has_text="Retrieved passages")
    await passages.get_by_text("Retrieved passages").click()
    await expect(passages).to_have_attribute("open", "")

    # The operator replies from the console's form; the visitor sees it live, under their name.
    await operator.get_by_label("Your name").fill("Grace")
    await operator.get_by_label("Reply as a person").fill("Hi, I'm Grace. What is the account?")
    await operator.get_by_role("button", name="Send reply").click()
    await expect(operator.get_by_role("status").filter(has_text="Reply")).to_have_text(
        "Reply: done.")
    await expect(operator.get_by_label("Reply as a person")).to_have_value("")
    reply = visitor.locator('.sb-msg[data-role="person"]')
    await expect(reply).to_have_count(1, timeout=5_000)
    await expect(reply).to_contain_text("Hi, I'm Grace. What is the account?")
    await expect(reply.locator(".sb-author")).to_have_text("Grace")
    await expect(reply).to_have_attribute("data-live", "true")

    # The console's transcript shows the person's message after the bot's turns, and who holds it.
    transcript = operator.get_by_role("region", name="Transcript")
    person = transcript.locator(".msg.person")
    await expect(person).to_have_count(1)
    await expect(person).to_contain_text("Hi, I'm Grace. What is the account?")
    await expect(person).to_contain_text("Grace")
    order = await transcript.locator(".msg").evaluate_all(
        "(items) => items.map((i) => i.className.replace('msg ', ''))")
    assert order == ["customer", "bot", "customer", "bot", "person"]
    await expect(operator.locator(".meta").first).to_contain_text("Held by a person")
    await expect(passages).to_have_attribute("open", "")

    # While Grace holds it the bot is silent; the visitor's message is kept and reaches the
    # console's transcript too.
    await say(visitor, "It's grace@example.com")
    await expect(visitor.locator('.sb-msg[data-role="note"]').last).to_contain_text(
        "passed to the person handling this conversation")
    await expect(answers(visitor)).to_have_count(2)
    await expect(transcript.locator(".msg.customer").last).to_contain_text(
        "It's grace@example.com", timeout=5_000)

    # A console POST without the CSRF token is refused; the same call with it would pass.
    refused = await operator.evaluate(
        """async (path) => {
            const r = await fetch(path, {method: "POST", credentials: "same-origin",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({content: "forged", author: {name: "Mallory"}})});
            return [r.status, (await r.json()).error.code];
        }""",
        f"/v1/threads/{thread_id}/messages",
    )
    assert refused == [403, "csrf_failed"]
    await expect(reply).to_have_count(1)

    # Hand back from the console: the widget's banner goes, and the bot answers again.
    await operator.get_by_role("button", name="Hand back to the bot").click()
    await expect(operator.get_by_role("status").filter(has_text="Hand back")).to_have_text(
        "Hand back: done.")
    await expect(operator.locator(".meta").first).to_contain_text("Held by the bot")
    await expect(hand_back).to_be_hidden()  # the bot holds it: nothing to hand back
    await expect(operator.get_by_role("button", name="Send reply")).to_be_visible()
    await expect(banner).to_be_hidden(timeout=5_000)
    await expect(visitor.locator("html")).to_have_attribute("data-control", "bot")
    await say(visitor, "How do I reset my password?")
    await expect(answers(visitor)).to_have_count(3)
    await expect(answers(visitor).last).to_contain_text("Forgot password")

    # The console shows the bot's new turn; the thread left the Inbox.
    await expect(transcript.locator(".msg.bot")).to_have_count(3, timeout=5_000)
    async with daemon.admin() as admin:
        inbox = await json_call(admin, "GET", "/v1/inbox")
    assert [t["id"] for t in inbox["data"]] == []

    # Closing from the console: the bot holds it, so the widget has no stream open; its 10 s
    # look sees the closed state.
    await operator.get_by_role("button", name="Close thread").click()
    await expect(operator.get_by_role("status").filter(has_text="Close")).to_have_text(
        "Close: done.")
    await expect(operator.locator(".badge.closed")).to_be_visible()
    await expect(banner).to_contain_text("This conversation is closed", timeout=12_000)


async def test_a_person_who_writes_first_from_the_console_reaches_the_open_widget(
    context: BrowserContext, operator_context: BrowserContext, daemon: Daemon
) -> None:
    """No escalation: the bot holds the conversation and the widget has no stream open, yet a
    person writing first (the console opens any thread) is seen within its 10 s look."""
    visitor = await open_chat(context, daemon)
    await say(visitor, "How do I reset my password?")
    await expect(answers(visitor).last).to_contain_text("Forgot password")
    async with daemon.admin() as admin:
        (thread,) = (await json_call(admin, "GET", "/v1/threads"))["data"]
    operator = await signed_in(operator_context, daemon, f"/console/threads/{thread['id']}")
    await operator.get_by_label("Your name").fill("Grace")
    await operator.get_by_label("Reply as a person").fill("Did the reset link arrive?")
    await operator.get_by_role("button", name="Send reply").click()
    await expect(operator.get_by_role("status").filter(has_text="Reply")).to_have_text(
        "Reply: done.")
    reply = visitor.locator('.sb-msg[data-role="person"]')
    await expect(reply).to_contain_text("Did the reset link arrive?", timeout=12_000)
    await expect(visitor.locator("#sb-state")).to_contain_text("A person from our team")
    # From then on the stream is open: a second reply is there at once.
    await operator.get_by_label("Reply as a person").fill("I'll stay here in case it didn't.")
    await operator.get_by_role("button", name="Send reply").click()
    await expect(reply).to_have_count(2, timeout=3_000)
