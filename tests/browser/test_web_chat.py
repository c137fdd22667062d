"""The web chat in real headless Chromium, against a running daemon with the real agent engine
and the bundled example knowledge base (offline responder: no network)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, Route, expect

from connectors.web import sign_identity
from tests.http.harness import SECRET, Daemon, running


@pytest.fixture
async def daemon(sqlite_url: str) -> AsyncIterator[Daemon]:
    async with running(sqlite_url, real_engine=True) as started:
        yield started


async def open_chat(context: BrowserContext, daemon: Daemon) -> Page:
    page = await context.new_page()
    await page.goto(f"{daemon.url}/chat")
    await expect(page.locator("#sb-who")).to_contain_text("guest")
    return page


async def say(page: Page, text: str) -> None:
    # As a person would: once the previous answer has finished (the composer ignores Enter
    # while a turn is still streaming; the text stays in the box).
    await expect(page.get_by_role("button", name="Send", exact=True)).to_be_enabled()
    box = page.get_by_label("Your message")
    await box.fill(text)
    await box.press("Enter")


def answers(page: Page) -> Any:
    return page.locator('.sb-msg[data-role="assistant"]')


async def test_streamed_answer_with_citation_then_reload_finds_it(
    context: BrowserContext, daemon: Daemon
) -> None:
    page = await open_chat(context, daemon)
    await say(page, "How do I reset my password?")
    answer = page.locator('.sb-msg[data-role="assistant"]').last
    await expect(answer.locator(".sb-text")).to_contain_text("Forgot password")
    citation = answer.locator("a.sb-citation")
    await expect(citation).to_contain_text("Resetting your password")
    # The source is said once, in the list: the answer's own "Source: …" line is not shown.
    await expect(answer.locator(".sb-text")).not_to_contain_text("Source:")
    await expect(answer).to_have_attribute("data-run", re.compile(r"^run_"))
    # The answer arrived as several deltas, each rendered as it came.
    assert int(await answer.get_attribute("data-deltas") or "0") >= 2
    # A bundled document has no address: its link reveals the cited passage.
    await citation.click()
    await expect(citation).to_have_attribute("aria-expanded", "true")

    await page.reload()
    await expect(page.locator('.sb-msg[data-role="user"]').first).to_contain_text(
        "How do I reset my password?")
    restored = page.locator('.sb-msg[data-role="assistant"]').first
    await expect(restored).to_contain_text("Forgot password")
    await expect(restored.locator("a.sb-citation")).to_contain_text("Resetting your password")
    await expect(restored.locator(".sb-text")).not_to_contain_text("Source:")
    await page.get_by_role("button", name="History").click()
    await expect(page.locator("#sb-history-list button").first).to_have_text(
        "How do I reset my password?")

    # "New conversation" starts a clean one; the earlier one stays in the history.
    await page.get_by_role("button", name="New conversation").click()
    await expect(page.locator(".sb-msg")).to_have_count(0)
    await expect(page.get_by_label("Your message")).to_be_focused()


async def test_asking_for_a_human_shows_the_escalated_state_on_a_phone(
    context: BrowserContext, daemon: Daemon
) -> None:
    page = await open_chat(context, daemon)
    await page.set_viewport_size({"width": 375, "height": 740})
    await say(page, "I want to talk to a human")
    state = page.get_by_role("status").filter(has_text="Escalated")
    await expect(state).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("data-state", "escalated")
    await expect(answers(page).last).to_contain_text("a person will follow up")
    # Nothing overflows sideways on a phone-width screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    async with daemon.admin() as admin, admin.get("/v1/threads?state=escalated") as response:
        escalated = (await response.json())["data"]
    assert len(escalated) == 1

    await page.reload()
    await expect(page.get_by_role("status").filter(has_text="Escalated")).to_be_visible()


async def test_a_solved_problem_shows_the_closed_state(
    context: BrowserContext, daemon: Daemon
) -> None:
    page = await open_chat(context, daemon)
    await say(page, "How do I reset my password?")
    await expect(answers(page).last).to_contain_text("Forgot password")
    await say(page, "That fixed it, thanks!")
    await expect(page.get_by_role("status").filter(has_text="closed")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("data-state", "closed")


async def test_anonymous_visitor_signs_in_mid_chat_and_the_thread_continues(
    context: BrowserContext, daemon: Daemon
) -> None:
    page = await open_chat(context, daemon)
    await say(page, "How do I reset my password?")
    await expect(answers(page).last).to_contain_text("Forgot password")
    smith_before = await page.locator("html").get_attribute("data-smith")
    conversation = await page.locator("html").get_attribute("data-conversation")
    assert smith_before and conversation

    identity = sign_identity(SECRET, "user_42")
    sent: list[Any] = []
    page.on("request", lambda r: sent.append(r) if r.url.endswith("/web/session") else None)
    # An old host page still passing a customer id: it never leaves the browser unsigned.
    await page.evaluate(
        "(id) => window.SupportbotChat.identify({identity: id, name: 'Ada Lovelace', "
        "customer_id: 'cus_victim'})", identity)
    await expect(page.locator("#sb-who")).to_have_text("Signed in as Ada Lovelace")
    assert sent and all(r.headers["content-type"] == "application/json" for r in sent)
    assert (await sent[-1].all_headers())["origin"] == daemon.url
    assert sent[-1].post_data_json == {"identity": identity, "name": "Ada Lovelace"}
    assert await page.locator("html").get_attribute("data-smith") == smith_before

    await say(page, "How do I change my plan?")
    await expect(answers(page)).to_have_count(2)
    await expect(answers(page).last).not_to_have_attribute("aria-busy", "true")
    assert await page.locator("html").get_attribute("data-conversation") == conversation

    store = daemon.app.store
    smith = await store.get_smith(smith_before)
    assert (smith.display_name, smith.auto_memory) == ("Ada Lovelace", True)
    runs = await store.list_runs(smith_id=smith.id)
    assert len(runs) == 2 and len({run.thread_id for run in runs}) == 1

    # Signing in again from another browser lands on the same smith and conversation.
    other = await context.browser.new_context()  # type: ignore[union-attr]
    try:
        second = await other.new_page()
        await second.goto(f"{daemon.url}/chat#identity={identity}&name=Ada%20Lovelace")
        await expect(second.locator("#sb-who")).to_have_text("Signed in as Ada Lovelace")
        assert await second.locator("html").get_attribute("data-smith") == smith_before
        await expect(second.locator('.sb-msg[data-role="user"]').first).to_contain_text(
            "How do I reset my password?")
        assert "identity" not in second.url  # the signed token left the address bar
    finally:
        await other.close()


async def test_widget_script_opens_a_panel_and_attaches_a_file(
    context: BrowserContext, daemon: Daemon, tmp_path: Path
) -> None:
    host = f"{daemon.url}/host-page-for-test"

    async def serve_host(route: Route) -> None:
        await route.fulfill(content_type="text/html", body=(
            "<!doctype html><title>Acme</title><h1>Acme Cloud</h1>"
            f'<script src="{daemon.url}/widget.js" async></script>'))

    await context.route(host, serve_host)
    page = await context.new_page()
    await page.goto(host)
    launcher = page.get_by_role("button", name="Chat with us")
    await launcher.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Close chat")).to_have_attribute(
        "aria-expanded", "true")
    chat = page.frame_locator("iframe[title='Support chat']")
    await expect(chat.locator("#sb-who")).to_contain_text("guest")

    screenshot = tmp_path / "error.png"
    screenshot.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    await chat.locator("#sb-file").set_input_files(str(screenshot))
    await expect(chat.locator("#sb-files")).to_contain_text("error.png")
    await chat.get_by_label("Your message").fill("This error keeps popping up")
    await chat.get_by_role("button", name="Send").click()
    await expect(chat.locator('.sb-msg[data-role="user"]').last).to_contain_text("error.png")
    await expect(chat.locator('.sb-msg[data-role="assistant"]').last.locator(".sb-text")).not_to_be_empty()

    async with daemon.admin() as admin:
        async with admin.get("/v1/runs") as response:
            run = (await response.json())["data"][0]
        async with admin.get(f"/v1/runs/{run['id']}") as response:
            detail = await response.json()
        file_id = detail["input"][0]["attachments"][0]["file_id"]
        async with admin.get(f"/v1/files/{file_id}/content") as response:
            assert await response.read() == screenshot.read_bytes()

    await page.keyboard.press("Escape")  # focus is inside the frame: Escape is the frame's
    await page.get_by_role("button", name="Close chat").click()
    await expect(page.get_by_role("button", name="Chat with us")).to_be_focused()
