"""The web chat in headless Chromium when the model fails mid-answer: the words it had
streamed show, then give way to the fallback's answer — the bubble ends holding that answer
alone, as the stored run does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.test_web_chat import answers, open_chat, say
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply
from tests.http.harness import Daemon, running

HALF_ANSWER = "To reset your password, you need to log into your Apple ID account first and "

# Every text the answer bubble showed, in order, so the test sees the partial answer too.
RECORD_SHOWN = """
window.__shown = [];
new MutationObserver(function () {
  document.querySelectorAll('.sb-msg[data-role="assistant"] .sb-text').forEach(function (t) {
    var seen = window.__shown;
    if (seen[seen.length - 1] !== t.textContent) { seen.push(t.textContent); }
  });
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


@pytest.fixture
async def daemon(sqlite_url: str) -> AsyncIterator[Daemon]:
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.say(HALF_ANSWER, chunk_size=10, cut_after=5,
                                         delay_between_chunks=0.2))
        model = {"provider": "openai", "base_url": server.url, "api_key": "k", "name": "m",
                 "fallback": ["offline"], "max_retries": 0, "stream": True}
        async with running(sqlite_url, real_engine=True, model=model) as started:
            yield started


async def test_the_fallbacks_answer_replaces_the_partial_one(
    context: BrowserContext, daemon: Daemon
) -> None:
    await context.add_init_script(RECORD_SHOWN)
    page = await open_chat(context, daemon)
    await say(page, "How do I reset my password?")
    answer = answers(page).last
    await expect(answer).to_have_attribute("data-run", re.compile(r"^run_"))
    run = await daemon.app.store.get_run(str(await answer.get_attribute("data-run")))
    assert run.model.startswith("offline")
    await expect(answer).to_have_attribute("data-resets", "1")
    # What the bubble holds is the stored answer (its **bold** markers rendered as bold), less
    # its "Source: …" line, which the sources list under it replaces.
    stored, _, source = run.output_text.strip().replace("**", "").rpartition("\n\nSource: ")
    assert stored and source, run.output_text
    await expect(answer.locator(".sb-text")).to_have_text(stored)
    await expect(answer.locator("a.sb-citation")).to_have_count(1)

    shown: list[str] = await page.evaluate("window.__shown")
    assert any(text.startswith("To reset your password, you") for text in shown), shown
    assert "Apple ID" not in (await answer.locator(".sb-text").text_content() or "")
