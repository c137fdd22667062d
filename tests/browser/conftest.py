"""Real headless Chromium (Debian's ``chromium``) driven by Playwright's Python API.

Never ``playwright install``: the browser is the system one at ``/usr/bin/chromium``. Missing
locally → the browser tests skip; missing on CI (``CI=true``) → they fail. A failing test leaves
a screenshot of every page it opened in ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

CHROMIUM = Path(os.environ.get("SUPPORTBOT_TEST_CHROMIUM", "/usr/bin/chromium"))
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@asynccontextmanager
async def profile(browser: Browser, request: pytest.FixtureRequest,
                  label: str = "") -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no cookies); screenshots of its pages if the test failed."""
    ctx = await browser.new_context(viewport={"width": 1000, "height": 800})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid) + label
            for n, page in enumerate(ctx.pages):
                await page.screenshot(path=str(ARTIFACTS / f"{name}-{n}.png"), full_page=True)
        await ctx.close()


@pytest.fixture
async def context(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[BrowserContext]:
    async with profile(browser, request) as ctx:
        yield ctx
