"""The widget links an answer's source to the synced Help Center article it came from (real
headless Chromium, the real agent engine, the fake Intercom as the help center)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext, expect

from tests.fakes.intercom import FakeIntercom
from tests.http.harness import Daemon, running


@pytest.fixture
async def help_center() -> AsyncIterator[FakeIntercom]:
    fake = FakeIntercom()
    await fake.start()
    fake.add_article("Refunds", "<p>Annual plans are refunded within 30 days of purchase.</p>")
    fake.add_article("Webhooks", "<p>Failed webhook deliveries are retried for three days.</p>")
    try:
        yield fake
    finally:
        await fake.close()
    if fake.violations:
        pytest.fail("requests that violate Intercom's spec:\n" + "\n".join(fake.violations))


@pytest.fixture
async def daemon(sqlite_url: str, help_center: FakeIntercom) -> AsyncIterator[Daemon]:
    async with running(
        sqlite_url,
        real_engine=True,
        intercom={"token": help_center.token, "base_url": help_center.base_url},
        knowledge={"sources": [{"name": "help", "kind": "intercom"}]},
    ) as started:
        (report,) = await started.app.knowledge_sync.sync()
        assert (report.added, report.error) == (2, None)
        yield started


async def test_the_widget_links_the_cited_help_center_article(
    context: BrowserContext, daemon: Daemon, help_center: FakeIntercom
) -> None:
    url = next(a["url"] for a in help_center.articles.values() if a["title"] == "Refunds")
    page = await context.new_page()
    await page.goto(f"{daemon.url}/chat")
    box = page.get_by_label("Your message")
    await box.fill("how long do I have to get a refund on an annual plan")
    await box.press("Enter")

    answer = page.locator('.sb-msg[data-role="assistant"]').last
    await expect(answer.locator(".sb-text")).to_contain_text("30 days")
    citation = answer.locator("a.sb-citation")
    await expect(citation).to_have_text("Refunds")
    await expect(citation).to_have_attribute("href", url)
    await expect(citation).to_have_attribute("target", "_blank")
