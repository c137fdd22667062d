"""A question answered from a synced Intercom Help Center cites the article's URL as a link on
every channel: an Intercom reply (HTML ``<a href>``), a Slack thread (mrkdwn ``<url>``), and the
web API (``citations[].url``, which the widget links)."""

from __future__ import annotations

import aiohttp

from bot.app import Application
from tests.conftest import make_settings
from tests.connectors.intercom.conftest import deliver as deliver_intercom
from tests.connectors.intercom.conftest import intercom_section, wait_until
from tests.connectors.slack.conftest import CUSTOMER, SUPPORT
from tests.connectors.slack.conftest import deliver as deliver_slack
from tests.fakes.intercom import FakeIntercom
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, event_callback, message

QUESTION = "how long do I have to get a refund on an annual plan"


async def test_every_channel_links_the_cited_article(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    fake_intercom.add_article(
        "Refunds", "<p>Annual plans are refunded within 30 days of purchase.</p>"
    )
    fake_intercom.add_article("Webhooks", "<p>Failed webhooks are retried for three days.</p>")
    async with FakeSlack() as slack:
        slack.add_user(CUSTOMER, "Carla Customer", "carla@example.com", "CTO")
        settings = make_settings(
            sqlite_url,
            connectors=["intercom", "slack", "web"],
            intercom=intercom_section(fake_intercom),
            slack={"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
                   "base_url": slack.base_url, "support_channels": [SUPPORT],
                   "post_interval_seconds": 0},
            knowledge={"sources": [{"name": "help", "kind": "intercom"}]},
        )
        async with Application(settings) as app:
            (report,) = await app.knowledge_sync.sync()
            assert report.added == 2
            url = next(
                a["url"] for a in fake_intercom.articles.values() if a["title"] == "Refunds"
            )

            contact = fake_intercom.add_contact()
            conversation = fake_intercom.start_conversation(contact, f"<p>{QUESTION}</p>")
            await deliver_intercom(
                app, fake_intercom.notification("conversation.user.created", conversation)
            )
            ts = slack.next_ts()
            await deliver_slack(app, event_callback(message(SUPPORT, CUSTOMER, QUESTION, ts)))
            async with aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{app.http_port}",
                cookie_jar=aiohttp.CookieJar(unsafe=True),
            ) as visitor:
                async with visitor.post("/web/session", json={}) as response:
                    assert response.status == 200
                async with visitor.post("/v1/conversations", json={}) as response:
                    web_conversation = (await response.json())["id"]
                async with visitor.post(
                    f"/v1/conversations/{web_conversation}/messages",
                    json={"content": QUESTION, "stream": False},
                ) as response:
                    web_answer = await response.json()

            await wait_until(lambda: bool(fake_intercom.replies(conversation)), what="the reply")
            await wait_until(lambda: bool(slack.thread(SUPPORT, ts)), what="the Slack answer")

    (reply,) = fake_intercom.replies(conversation)
    assert "30 days" in reply["body"] and f'<a href="{url}">' in reply["body"]
    (answer,) = slack.thread(SUPPORT, ts)
    # Markdown for Slack to render: the bare address is a link there.
    assert "30 days" in answer["text"] and f"({url})" in answer["text"]
    assert answer["format"] == "markdown"
    assert "30 days" in web_answer["output_text"]
    assert {c["url"] for c in web_answer["citations"]} == {url}
