"""The operator console in real headless Chromium against a running daemon (real agent engine,
offline responder, bundled knowledge): sign-in, pages without a session, CSRF, the live inbox,
the thread page, agents, analytics; and the widget's thumbs storing feedback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.browser.test_web_chat import answers, open_chat, say
from tests.http.harness import ADMIN, Daemon, json_call, running


@pytest.fixture
async def daemon(sqlite_url: str) -> AsyncIterator[Daemon]:
    async with running(sqlite_url, real_engine=True) as started:
        yield started


async def signed_in(context: BrowserContext, daemon: Daemon, path: str = "/console") -> Page:
    page = await context.new_page()
    await page.goto(f"{daemon.url}{path}")
    await page.get_by_label("Admin token").fill(ADMIN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("navigation", name="Console")).to_be_visible()
    return page


async def test_console_pages_without_a_session_show_only_the_sign_in(
    context: BrowserContext, daemon: Daemon
) -> None:
    page = await context.new_page()
    for path in ("/console", "/console/analytics", "/console/knowledge", "/console/agents"):
        await page.goto(f"{daemon.url}{path}")
        await expect(page.get_by_label("Admin token")).to_be_visible()
        await expect(page.get_by_role("navigation")).to_have_count(0)
        await expect(page.locator("table, svg")).to_have_count(0)
    await page.get_by_label("Admin token").fill("wrong")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not the admin token")
    # Signing in from a deep link lands on that page.
    await page.get_by_label("Admin token").fill(ADMIN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Agents", level=1)).to_be_visible()
    assert page.url.endswith("/console/agents")


async def test_a_post_without_the_csrf_token_is_refused(
    context: BrowserContext, daemon: Daemon
) -> None:
    page = await signed_in(context, daemon)
    script = """async (withToken) => {
        const headers = {"Content-Type": "application/json"};
        if (withToken) headers["X-CSRF-Token"] = document.querySelector('meta[name=csrf-token]').content;
        const r = await fetch("/v1/agents/support/versions",
                              {method: "POST", headers, body: JSON.stringify({note: "t"})});
        return r.status;
    }"""
    assert await page.evaluate(script, False) == 403
    assert await page.evaluate(script, True) == 201
    # Sign out: back to nothing but the sign-in.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Admin token")).to_be_visible()
    assert await page.evaluate("fetch('/v1/inbox').then(r => r.status)") == 401


async def test_an_escalation_reaches_the_inbox_within_two_seconds_and_opens_as_a_transcript(
    context: BrowserContext, daemon: Daemon
) -> None:
    operator = await signed_in(context, daemon)
    await expect(operator.get_by_text("Nothing waiting")).to_be_visible()
    visitor = await open_chat(context, daemon)
    await say(visitor, "How do I reset my password?")
    await expect(answers(visitor).last).to_contain_text("Forgot password")
    await say(visitor, "I want to talk to a human")
    await expect(visitor.get_by_role("status").filter(has_text="Escalated")).to_be_visible()
    escalated_at = time.monotonic()
    row = operator.locator("tr[data-thread]")
    await expect(row).to_have_count(1, timeout=2000)
    assert time.monotonic() - escalated_at < 2.0
    await expect(row).to_contain_text("I want to talk to a human")
    # The refresh every second keeps the row: keyboard focus on its link stays put.
    link = row.get_by_role("link")
    await link.focus()
    waited = await row.locator(".c-waiting").inner_text()
    await expect(row.locator(".c-waiting")).not_to_have_text(waited, timeout=5000)
    await expect(link).to_be_focused()

    await operator.keyboard.press("Enter")
    transcript = operator.get_by_role("region", name="Transcript")
    await expect(transcript.locator(".msg.customer").first).to_contain_text(
        "How do I reset my password?")
    first_answer = transcript.locator(".msg.bot").first
    await expect(first_answer).to_contain_text("Forgot password")
    await expect(first_answer).to_contain_text("Model")
    await expect(first_answer).to_contain_text("Tokens")
    await first_answer.get_by_text("Retrieved passages").click()
    await expect(first_answer.locator(".passage").first).to_contain_text("score")
    await expect(operator.locator(".badge.escalated")).to_be_visible()
    await expect(operator.get_by_role("button", name="Hand back to the bot")).to_be_visible()
    await expect(operator.get_by_label("Reply as a person")).to_be_visible()


async def test_thumbs_in_the_widget_store_feedback_with_the_run(
    context: BrowserContext, daemon: Daemon
) -> None:
    page = await open_chat(context, daemon)
    await say(page, "How do I reset my password?")
    answer = answers(page).last
    await expect(answer).to_contain_text("Forgot password")
    await answer.get_by_role("button", name="Helpful", exact=True).click()
    await expect(answer.get_by_role("status")).to_have_text("Thanks for your feedback.")
    await expect(answer.get_by_role("button", name="Helpful", exact=True)).to_have_attribute(
        "aria-pressed", "true")
    run_id = await answer.get_attribute("data-run")
    async with daemon.admin() as admin:
        run = await json_call(admin, "GET", f"/v1/runs/{run_id}")
        thread_id = run["thread_id"]
        rated = await json_call(admin, "GET", f"/v1/threads/{thread_id}/transcript")
    assert [f["rating"] for f in rated["runs"][0]["feedback"]] == ["up"]

    # Changing one's mind: thumbs down, and say why.
    await answer.get_by_role("button", name="Not helpful").click()
    await answer.get_by_label("What was missing? (optional)").fill("I have no email access")
    await answer.get_by_role("button", name="Send").click()
    await expect(answer.get_by_label("What was missing? (optional)")).to_have_count(0)
    async with daemon.admin() as admin:
        rated = await json_call(admin, "GET", f"/v1/threads/{thread_id}/transcript")
    assert [(f["rating"], f["comment"]) for f in rated["runs"][0]["feedback"]] == [
        ("down", "I have no email access")]

    # The thumbs are there again after a reload (restored answers can be rated too).
    await page.reload()
    await expect(answers(page).first.get_by_role("button", name="Not helpful")).to_be_visible()


async def test_agents_publish_promote_and_roll_back(
    context: BrowserContext, daemon: Daemon
) -> None:
    page = await signed_in(context, daemon, "/console/agents")
    await page.get_by_label("Note").fill("first")
    await page.get_by_role("button", name="Publish current configuration").click()
    await expect(page.get_by_text("Live: version 1")).to_be_visible()
    await page.get_by_label("Note").fill("second")
    await page.get_by_role("button", name="Publish current configuration").click()
    await expect(page.get_by_role("button", name="Promote to version 2")).to_be_visible()
    await page.get_by_role("button", name="Promote to version 2").click()
    await expect(page.get_by_text("Live: version 2")).to_be_visible()
    await page.get_by_role("button", name="Roll back to version 1").click()
    await expect(page.get_by_text("Live: version 1")).to_be_visible()


async def test_knowledge_and_analytics_pages_work_at_phone_width(
    context: BrowserContext, daemon: Daemon
) -> None:
    visitor = await open_chat(context, daemon)
    await say(visitor, "How do I reset my password?")
    await expect(answers(visitor).last).to_contain_text("Forgot password")
    page = await signed_in(context, daemon, "/console/knowledge")
    await page.set_viewport_size({"width": 375, "height": 740})
    await expect(page.get_by_role("heading", name="Documents")).to_be_visible()
    await page.get_by_label("Search preview").fill("reset password")
    await page.get_by_role("button", name="Search", exact=True).click()
    await expect(page.locator(".passage").first).to_contain_text("password")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375

    await page.get_by_role("link", name="Analytics").click()
    await expect(page.locator(".kpi").first).to_contain_text("1")
    await expect(page.locator("figure.chart svg")).to_have_count(4)
    await expect(page.get_by_role("img", name="Conversations per day: web 1 in total")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
