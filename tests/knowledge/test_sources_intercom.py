"""An Intercom Help Center as a knowledge source, against the fake Intercom (every request and
answer checked against the 2.14 spec): published articles per locale in, drafts never, edits
re-indexed, deletions removed, a failed sync changes nothing; only articles of a published
help center's collections, filed under their breadcrumb; 429/503 waited out per Retry-After."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.config import Settings
from bot.knowledge import KnowledgeBase
from bot.knowledge.sync import KnowledgeSync, list_documents
from bot.store.database import Database
from bot.store.schema import kb_chunks
from tests.conftest import make_settings
from tests.fakes.intercom import FakeIntercom


def help_center_settings(db_url: str, fake: FakeIntercom, **source: Any) -> Settings:
    return make_settings(
        db_url,
        intercom={"token": fake.token, "base_url": fake.base_url},
        knowledge={"sources": [{"name": "help", "kind": "intercom", **source}]},
    )


async def _texts(db: Database) -> str:
    async with db.read() as conn:
        return "\n".join((await conn.execute(select(kb_chunks.c.text))).scalars().all())


def _add_help_center(fake: FakeIntercom) -> dict[str, str]:
    return {
        "refunds": fake.add_article(
            "Refunds",
            "<p>Annual plans are refunded within 30 days of purchase.</p>",
            translations={
                "fr": {"title": "Remboursements", "body": "<p>Les forfaits annuels sont "
                       "remboursés sous 30 jours.</p>", "state": "published"},
                "de": {"title": "Rückerstattung", "body": "<p>Entwurf.</p>", "state": "draft"},
            },
        ),
        "sso": fake.add_article(
            "Single sign-on", "<h2>Okta</h2><p>Create a SAML application in Okta first.</p>"
        ),
        "webhooks": fake.add_article(
            "Webhooks", "<p>Webhooks are retried for three days with backoff.</p>"
        ),
        "draft": fake.add_article(
            "Upcoming pricing", "<p>Secret launch discount code LAUNCH50.</p>", state="draft"
        ),
    }


async def test_published_articles_sync_per_locale_and_drafts_never(
    db_url: str, fake_intercom: FakeIntercom, kb: KnowledgeBase
) -> None:
    ids = _add_help_center(fake_intercom)
    for n in range(60):  # more than a page (50): the list is paged
        fake_intercom.add_article(f"Filler {n}", f"<p>Filler article number {n}.</p>")
    sync = KnowledgeSync(kb, help_center_settings(db_url, fake_intercom))

    (report,) = await sync.sync()

    assert report.error is None
    # 3 published articles + the French translation + 60 fillers; no draft, no German draft.
    assert (report.added, report.updated, report.removed) == (64, 0, 0)
    assert len(fake_intercom.calls("GET", "/articles")) == 2
    documents = {d.title: d for d in await list_documents(kb, source="help")}
    assert documents["Refunds"].url == fake_intercom.article_json(ids["refunds"])[
        "translated_content"]["en"]["url"]
    assert documents["Remboursements"].url.endswith(f"/fr/articles/{ids['refunds']}-remboursements")
    assert "Upcoming pricing" not in documents and "Rückerstattung" not in documents
    text = await _texts(kb.db)
    assert "LAUNCH50" not in text and "Entwurf" not in text
    passages = await kb.search("how long are annual plans refunded")
    assert passages[0].source == documents["Refunds"].url


async def test_an_edit_is_reindexed_a_deletion_removed_and_the_rest_untouched(
    db_url: str, fake_intercom: FakeIntercom, kb: KnowledgeBase
) -> None:
    ids = _add_help_center(fake_intercom)
    sync = KnowledgeSync(kb, help_center_settings(db_url, fake_intercom, locales=["en"]))
    (first,) = await sync.sync()
    assert (first.added, first.error) == (3, None)  # locales=["en"]: no French
    before = {d.title: d for d in await list_documents(kb)}

    fake_intercom.edit_article(
        ids["webhooks"], body="<p>Webhooks are retried for five days with backoff.</p>"
    )
    fake_intercom.delete_article(ids["sso"])
    fake_intercom.edit_article(ids["draft"], state="draft", body="<p>Still a draft.</p>")
    (second,) = await sync.sync()

    assert (second.added, second.updated, second.removed, second.unchanged) == (0, 1, 1, 1)
    after = {d.title: d for d in await list_documents(kb)}
    assert set(after) == {"Refunds", "Webhooks"}
    assert after["Refunds"].updated_at == before["Refunds"].updated_at  # not rewritten
    text = await _texts(kb.db)
    assert "five days" in text and "three days" not in text and "SAML" not in text

    # An article that goes back to draft leaves the index at the next sync.
    fake_intercom.edit_article(ids["refunds"], state="draft")
    (third,) = await sync.sync()
    assert third.removed == 1
    assert [d.title for d in await list_documents(kb)] == ["Webhooks"]


async def test_a_failed_sync_leaves_the_previous_index_serving(
    db_url: str, fake_intercom: FakeIntercom, kb: KnowledgeBase
) -> None:
    _add_help_center(fake_intercom)
    for n in range(60):
        fake_intercom.add_article(f"Filler {n}", f"<p>Filler article number {n}.</p>")
    sync = KnowledgeSync(kb, help_center_settings(db_url, fake_intercom))
    await sync.sync()
    before = await list_documents(kb)
    for article_id in list(fake_intercom.articles)[:5]:
        fake_intercom.delete_article(article_id)
    fake_intercom.fail("GET", "/articles", status=500, times=1, retry_after=None)

    (report,) = await sync.sync()

    assert report.error is not None and "HTTP 500" in report.error
    assert fake_intercom.token not in report.error
    assert await list_documents(kb) == before  # nothing removed on a half-read help center


async def test_without_an_intercom_token_the_sync_reports_it(db_url: str, kb: KnowledgeBase,
                                                              tmp_path: Path) -> None:
    settings = make_settings(
        db_url, knowledge={"sources": [{"name": "help", "kind": "intercom"}]}
    )
    (report,) = await KnowledgeSync(kb, settings).sync()
    assert report.error is not None and "intercom.token" in report.error


async def test_a_list_without_bodies_is_completed_article_by_article(
    db_url: str, fake_intercom: FakeIntercom, kb: KnowledgeBase
) -> None:
    ids = _add_help_center(fake_intercom)
    fake_intercom.list_articles_without_content = True
    sync = KnowledgeSync(kb, help_center_settings(db_url, fake_intercom))

    (report,) = await sync.sync()

    assert (report.added, report.error) == (4, None)  # 3 articles + the French translation
    fetched = {call.path for call in fake_intercom.calls("GET", r"/articles/\d+")}
    assert fetched == {f"/articles/{i}" for i in ids.values()}
    assert "LAUNCH50" not in await _texts(kb.db)


async def test_only_articles_of_published_collections_are_read_and_filed_under_them(
    db_url: str, fake_intercom: FakeIntercom, kb: KnowledgeBase
) -> None:
    fake = fake_intercom
    okta = fake.add_collection("Okta", parent_id=fake.collection_id)  # a section of General
    dark = fake.add_help_center("Partner portal", website_turned_on=False)
    partners = fake.add_collection("Partners", help_center_id=dark)
    for n in range(55):  # more collections than a page (50): the list is paged
        fake.add_collection(f"Empty {n}")
    fake.add_article("Refunds", "<p>Annual plans are refunded within 30 days.</p>")
    fake.add_article("SAML setup", "<p>Create a SAML application in Okta.</p>", parent_id=okta)
    fake.add_article("Loose notes", "<p>Standalone secret LOOSE77.</p>", standalone=True)
    fake.add_article("Partner rates", "<p>Partner margin code MARGIN30.</p>", parent_id=partners)
    sync = KnowledgeSync(kb, help_center_settings(db_url, fake))

    (report,) = await sync.sync()

    assert (report.added, report.error) == (2, None)
    assert len(fake.calls("GET", "/help_center/collections")) == 2
    assert len(fake.calls("GET", "/help_center/help_centers")) == 1
    sections = {d.title: d.section for d in await list_documents(kb, source="help")}
    assert sections == {"Refunds": "General", "SAML setup": "General › Okta"}
    text = await _texts(kb.db)
    assert "LOOSE77" not in text and "MARGIN30" not in text

    # A collection renamed re-files its articles without re-indexing them.
    fake.collections[fake.collection_id]["name"] = "Billing and accounts"
    (again,) = await sync.sync()
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    sections = {d.title: d.section for d in await list_documents(kb, source="help")}
    assert sections["SAML setup"] == "Billing and accounts › Okta"

    # The partner help center's site is turned on: its article is published now.
    fake.help_centers[dark]["website_turned_on"] = True
    (third,) = await sync.sync()
    assert third.added == 1 and "MARGIN30" in await _texts(kb.db)


async def test_a_429_with_retry_after_is_waited_for_and_the_sync_succeeds(
    db_url: str, fake_intercom: FakeIntercom, kb: KnowledgeBase
) -> None:
    _add_help_center(fake_intercom)
    fake_intercom.fail("GET", "/articles", status=429, times=1, retry_after=1)
    sync = KnowledgeSync(
        kb, help_center_settings(db_url, fake_intercom, retry_backoff_seconds=0.01)
    )

    started = time.monotonic()
    (report,) = await sync.sync()
    waited = time.monotonic() - started

    assert (report.added, report.error) == (4, None)
    assert [c.status for c in fake_intercom.calls("GET", "/articles")] == [429, 200]
    assert waited >= 1.0  # the Retry-After, not the 10 ms backoff


async def test_a_503_that_persists_fails_the_sync_after_bounded_retries(
    db_url: str, fake_intercom: FakeIntercom, kb: KnowledgeBase
) -> None:
    _add_help_center(fake_intercom)
    fake_intercom.fail("GET", "/articles", status=503, times=10, retry_after=0)
    sync = KnowledgeSync(kb, help_center_settings(
        db_url, fake_intercom, max_retries=2, retry_backoff_seconds=0.01
    ))

    (report,) = await sync.sync()

    assert report.error is not None and "HTTP 503" in report.error
    assert len(fake_intercom.calls("GET", "/articles")) == 3  # the first try and two retries
    assert await list_documents(kb) == []
