"""Web handoff in real headless Chromium: a visitor escalates in the widget, a person answers
through the operator API and the reply appears in the open widget without a reload, the
visitor's messages while the person holds the conversation are kept and shown, and after the
handback the bot answers the next message (real engine, offline responder)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.test_web_chat import answers, open_chat, say
from tests.http.harness import Daemon, json_call, running


@pytest.fixture
async def daemon(sqlite_url: str) -> AsyncIterator[Daemon]:
    async with running(sqlite_url, real_engine=True) as started:
        yield started


async def test_a_persons_reply_appears_live_and_the_bot_answers_after_the_handback(
    context: BrowserContext, daemon: Daemon
) -> None:
    page = await open_chat(context, daemon)
    await say(page, "I want to talk to a person")
    banner = page.locator("#sb-state")
    await expect(banner).to_contain_text("a person from our team has this conversation")
    await expect(answers(page).last).to_contain_text("a person will follow up")
    async with daemon.admin() as admin:
        (thread,) = (await json_call(admin, "GET", "/v1/threads?state=escalated"))["data"]

        # A person answers; the open widget shows it, under their name, without a reload.
        await json_call(admin, "POST", f"/v1/threads/{thread['id']}/messages", 201,
                        json={"content": "Hi, I'm Grace from billing. How can I help?",
                              "author": {"name": "Grace"}})
        reply = page.locator('.sb-msg[data-role="person"]')
        await expect(reply).to_have_count(1, timeout=5_000)
        await expect(reply).to_contain_text("Hi, I'm Grace from billing. How can I help?")
        await expect(reply.locator(".sb-author")).to_have_text("Grace")
        await expect(reply).to_have_attribute("data-live", "true")
        await expect(reply.locator(".sr-only")).to_have_text("Grace from our team said: ")

        # While Grace holds it the bot says nothing; the visitor's message is kept and shown.
        await say(page, "My invoice shows the wrong amount")
        await expect(page.locator('.sb-msg[data-role="note"]').last).to_contain_text(
            "passed to the person handling this conversation")
        await expect(answers(page)).to_have_count(1)

        # A second reply arrives live too (the stream stays open).
        await json_call(admin, "POST", f"/v1/threads/{thread['id']}/messages", 201,
                        json={"content": "Fixed it: you'll get a corrected invoice.",
                              "author": {"name": "Grace"}})
        await expect(reply).to_have_count(2, timeout=5_000)

        await json_call(admin, "POST", f"/v1/threads/{thread['id']}/handback")
        await expect(banner).to_be_hidden(timeout=5_000)
        await expect(page.locator("html")).to_have_attribute("data-control", "bot")

    await say(page, "How do I reset my password?")
    await expect(answers(page).last).to_contain_text("Forgot password")
    await expect(answers(page)).to_have_count(2)

    # A reload shows the whole conversation in order, Grace's replies among it.
    await page.reload()
    roles = page.locator(".sb-msg")
    await expect(roles.last).to_contain_text("Forgot password")
    shown = await roles.evaluate_all("(items) => items.map((i) => i.getAttribute('data-role'))")
    assert shown == ["user", "assistant", "person", "user", "person", "user", "assistant"]
