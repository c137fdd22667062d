"""Screenshots of every console page, and of the widget with its thumbs, for the README.

Runs a daemon on a temporary SQLite database with the real agent engine (offline responder,
bundled knowledge), talks to it as visitors do, adds two weeks of demo history on three channels
for the charts, and saves PNGs under ``docs/``:

    .venv/bin/python scripts/screenshots.py

Needs Chromium at /usr/bin/chromium (or $SUPPORTBOT_TEST_CHROMIUM). The history is made up
for the pictures; nothing here is a measurement.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.domain import Control, StopReason, ThreadState, new_id, now
from bot.store.schema import runs, threads, tool_calls
from tests.http.harness import ADMIN, Daemon, ask, json_call, running, session

DOCS = ROOT / "docs"
CHROMIUM = os.environ.get("SUPPORTBOT_TEST_CHROMIUM", "/usr/bin/chromium")
WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PRIORITIES = ["low", "normal", "normal", "high", "urgent"]
REASONS = ["billing dispute", "refund request", "bug report", "customer asked for a person"]
QUESTIONS = ["How do I export invoices to CSV?", "Can I change my plan mid-month?",
             "Do you support SSO with Okta?", "Where is my order?"]


async def visitors(daemon: Daemon) -> None:
    """Real turns: an answer rated, a content gap, an escalation waiting in the inbox."""
    async with daemon.client() as ada:
        await session(ada, name="Ada")
        c = await json_call(ada, "POST", "/v1/conversations", json={})
        answer = await ask(ada, c["id"], "How do I reset my password?")
        await json_call(ada, "POST", f"/v1/conversations/{c['id']}/feedback", expect=201,
                        json={"run_id": answer["run_id"], "rating": "up"})
        await ask(ada, c["id"], "I still cannot get in, I want to talk to a human")
    async with daemon.client() as grace:
        await session(grace)
        c = await json_call(grace, "POST", "/v1/conversations", json={})
        await ask(grace, c["id"], "How do I export invoices to CSV?")
        await ask(grace, c["id"], "Please get me a human, this is urgent")


async def history(daemon: Daemon) -> None:
    """Fourteen days of made-up threads on three channels, for the charts."""
    store = daemon.app.store
    agent = await store.get_agent("support")
    people = [await store.ensure_smith(f"demo:{n}", agent.id, display_name=n)
              for n in ("Ada Byron", "Grace Hopper", "Alan Kay", "Edsger Dijkstra",
                        "Barbara Liskov", "Ken Thompson", "Frances Allen")]
    rng = random.Random(7)
    start = now() - 14 * 86400

    def work(conn: Any) -> None:
        for day in range(14):
            for channel, base in (("web", 9), ("slack", 5), ("intercom", 7)):
                for _ in range(base + rng.randint(-2, 4)):
                    at = start + day * 86400 + rng.uniform(0, 80000)
                    escalated = rng.random() < 0.22
                    thread_id = new_id("thr")
                    smith = rng.choice(people)
                    conn.execute(threads.insert().values(
                        id=thread_id, smith_id=smith.id, agent_id=agent.id,
                        external_id=f"demo:{thread_id}", channel=channel,
                        state=(ThreadState.CLOSED if not escalated or rng.random() < 0.7
                               else ThreadState.ESCALATED).value,
                        control=(Control.HUMAN if escalated else Control.BOT).value,
                        title=None, metadata={}, created_at=at, updated_at=at + 900))
                    run_id = new_id("run")
                    score = rng.choice([0.1, 0.6, 0.8, 0.9])
                    conn.execute(runs.insert().values(
                        id=run_id, thread_id=thread_id, smith_id=smith.id, agent_id=agent.id,
                        agent_version=None,
                        input=[{"role": "user", "content": rng.choice(QUESTIONS)}],
                        output_text="…", model="offline",
                        stop_reason=(StopReason.ESCALATED if escalated
                                     else StopReason.CLOSED).value,
                        usage={"input_tokens": rng.randint(800, 3000),
                               "output_tokens": rng.randint(80, 400)},
                        rag_results=[{"title": "Doc", "score": score}], error=None,
                        started_at=at, finished_at=at + rng.uniform(0.8, 6)))
                    if escalated:
                        conn.execute(tool_calls.insert().values(
                            run_id=run_id, seq=0, call_id="c", name="ESCALATE",
                            arguments={"reason": rng.choice(REASONS),
                                       "priority": rng.choice(PRIORITIES)}, result={},
                            error=None, latency_ms=2.0))

    await store.db.run_tx(work)


async def reply_and_hear_back(page: Page, daemon: Daemon) -> None:
    """On the open thread page: a person replies from the console's form, the customer writes
    back while the person holds the thread, and the page shows the end of the transcript."""
    await page.get_by_label("Your name").fill("Sam")
    await page.get_by_label("Reply as a person").fill(
        "Hi, I'm Sam from support. I've sent you a new sign-in link; does it work?")
    await page.get_by_role("button", name="Send reply").click()
    await page.locator(".msg.person").wait_for()
    thread_id = page.url.rsplit("/", 1)[-1]
    async with daemon.admin() as admin:
        smith_id = (await json_call(admin, "GET", f"/v1/threads/{thread_id}/transcript")
                    )["customer"]["id"]
    async with daemon.admin(smith_id) as customer:
        (conversation,) = (await json_call(customer, "GET", "/v1/conversations"))["data"]
        await ask(customer, conversation["id"], "Yes, I'm in now. Thank you!")
    await page.locator(".msg.customer").filter(has_text="I'm in now").wait_for()
    await page.locator(".controls").scroll_into_view_if_needed()


async def shoot(page: Page, name: str, *, full: bool = False) -> None:
    await page.wait_for_timeout(400)
    await page.screenshot(path=str(DOCS / f"{name}.png"), full_page=full)
    print(f"docs/{name}.png")


async def main() -> None:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/screens.db"
        prices = {"prices": {"offline": {"input_per_million": 0.5, "output_per_million": 1.5}}}
        async with running(url, real_engine=True, analytics=prices) as daemon:
            await visitors(daemon)
            await history(daemon)
            async with daemon.admin() as admin:
                await json_call(admin, "POST", "/v1/agents/support/versions", expect=201,
                                json={"note": "first published instructions"})
                await json_call(admin, "POST", "/v1/agents/support/versions", expect=201,
                                json={"note": "friendlier tone, new refund policy"})
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
                context = await browser.new_context(viewport=WIDE)
                page = await context.new_page()
                await page.goto(f"{daemon.url}/console")
                await shoot(page, "console-sign-in")
                await page.get_by_label("Admin token").fill(ADMIN)
                await page.get_by_role("button", name="Sign in").click()
                await page.locator("tr[data-thread]").first.wait_for()
                await shoot(page, "console-inbox")
                await page.locator("tr[data-thread]").filter(has_text="Guest").first.get_by_role(
                    "link").click()
                await page.locator(".msg.bot").first.wait_for()
                await page.locator(".msg.bot details summary").first.click()
                await shoot(page, "console-thread")
                await reply_and_hear_back(page, daemon)
                await shoot(page, "console-thread-reply")
                await page.goto(f"{daemon.url}/console/knowledge")
                await page.get_by_label("Search preview").fill("reset my password")
                await page.get_by_role("button", name="Search", exact=True).click()
                await page.locator(".passage").first.wait_for()
                await shoot(page, "console-knowledge")
                await page.goto(f"{daemon.url}/console/agents")
                await page.get_by_text("Live: version").wait_for()
                await shoot(page, "console-agents")
                await page.goto(f"{daemon.url}/console/analytics?days=14")
                await page.locator("figure.chart svg").first.wait_for()
                await shoot(page, "console-analytics", full=True)
                await page.set_viewport_size(PHONE)
                await page.goto(f"{daemon.url}/console")
                await page.locator("tr[data-thread]").first.wait_for()
                await shoot(page, "console-inbox-phone")

                chat = await (await browser.new_context(viewport={"width": 480, "height": 720})
                              ).new_page()
                await chat.goto(f"{daemon.url}/chat")
                await chat.get_by_label("Your message").fill("How do I reset my password?")
                await chat.get_by_label("Your message").press("Enter")
                answer = chat.locator('.sb-msg[data-role="assistant"]').last
                await answer.get_by_role("button", name="Not helpful").click()
                await answer.get_by_label("What was missing? (optional)").fill(
                    "I no longer have access to that email")
                await shoot(chat, "widget-thumbs")
                await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
