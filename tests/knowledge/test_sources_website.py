"""A website as a knowledge source, against a fixture site on 127.0.0.1: a sitemap index, a
robots.txt that disallows a path, pages with ETags and page chrome (navigation, footer, cookie
banner), and a page that answers 429 with Retry-After once."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.knowledge import KnowledgeBase
from bot.knowledge.sync import KnowledgeSync, list_documents
from bot.store.database import Database
from bot.store.schema import kb_chunks
from tests.conftest import make_settings

CHROME = (
    "Products Pricing Careers menu",
    "We use cookies to improve your experience. Accept all cookies",
    "Copyright 2026 Acme Inc. All rights reserved.",
)


def page(title: str, *paragraphs: str) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<html><head><title>{title} | Acme Help</title></head><body>"
        f"<nav><a href='/'>Home</a> <a href='/pricing'>{CHROME[0]}</a></nav>"
        f"<div id='cookie-banner' class='cookie-consent'>{CHROME[1]}</div>"
        f"<main><article><h1>{title}</h1>{body}</article></main>"
        f"<footer><p>{CHROME[2]}</p><a href='/terms'>Terms</a></footer></body></html>"
    )


@dataclass
class Hit:
    path: str
    if_none_match: str | None
    status: int


@dataclass
class FixtureSite:
    """Serves ``files`` (path → (content type, body)) with strong ETags and 304s."""

    files: dict[str, tuple[str, str]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    base_url: str = ""
    fail: set[str] = field(default_factory=set)
    # path → how many more requests answer 429 with ``Retry-After: 1``.
    busy: dict[str, int] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        condition = request.headers.get("If-None-Match")
        if request.path in self.fail:
            self.hits.append(Hit(request.path, condition, 500))
            return web.Response(status=500)
        if self.busy.get(request.path, 0) > 0:
            self.busy[request.path] -= 1
            self.hits.append(Hit(request.path, condition, 429))
            return web.Response(status=429, headers={"Retry-After": "1"})
        found = self.files.get(request.path)
        if found is None:
            self.hits.append(Hit(request.path, condition, 404))
            return web.Response(status=404)
        content_type, body = found
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:16] + '"'
        if condition == etag:
            self.hits.append(Hit(request.path, condition, 304))
            return web.Response(status=304, headers={"ETag": etag})
        self.hits.append(Hit(request.path, condition, 200))
        return web.Response(text=body, content_type=content_type, headers={"ETag": etag})

    def sitemap(self, path: str, *locations: str, index: bool = False) -> None:
        tag, child = ("sitemapindex", "sitemap") if index else ("urlset", "url")
        entries = "".join(
            f"<{child}><loc>{loc if loc.startswith('http') else self.base_url + loc}</loc></{child}>"
            for loc in locations
        )
        self.files[path] = (
            "application/xml",
            '<?xml version="1.0" encoding="UTF-8"?>'
            + f'<{tag} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</{tag}>',
        )


@pytest.fixture
async def site() -> AsyncIterator[FixtureSite]:
    fixture = FixtureSite()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", fixture.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fixture.base_url = f"http://127.0.0.1:{port}"
    fixture.files["/robots.txt"] = ("text/plain", "User-agent: *\nDisallow: /private/\n")
    fixture.sitemap("/sitemap_index.xml", "/sitemaps/docs.xml", "/sitemaps/more.xml", index=True)
    fixture.sitemap(
        "/sitemaps/docs.xml",
        "/docs/refunds",
        "/docs/sso",
        "/private/secret",
        "http://elsewhere.example/docs/offsite",  # another site: never read
    )
    fixture.sitemap("/sitemaps/more.xml", "/docs/webhooks")
    fixture.files["/docs/refunds"] = ("text/html", page(
        "Refunds",
        "Annual plans are refunded within 30 days of purchase when you write to billing.",
        "The refund reaches your card within five business days of approval.",
    ))
    fixture.files["/docs/sso"] = ("text/html", page(
        "Single sign-on",
        "Create a SAML application in Okta, then paste its metadata URL into the settings.",
    ))
    fixture.files["/docs/webhooks"] = ("text/html", page(
        "Webhooks",
        "Failed webhook deliveries are retried for three days with exponential backoff.",
    ))
    fixture.files["/private/secret"] = ("text/html", page(
        "Internal", "The staff discount code is STAFF90 and must never be shared."
    ))
    try:
        yield fixture
    finally:
        await runner.cleanup()


def _sync(db_url: str, kb: KnowledgeBase, site: FixtureSite, **source: Any) -> KnowledgeSync:
    settings = make_settings(
        db_url,
        knowledge={"sources": [{
            "name": "site",
            "kind": "sitemap",
            "url": site.base_url + "/sitemap_index.xml",
            "requests_per_second": 200,
            **source,
        }]},
    )
    return KnowledgeSync(kb, settings)


async def _index_text(db: Database) -> str:
    async with db.read() as conn:
        return "\n".join((await conn.execute(select(kb_chunks.c.text))).scalars().all())


async def test_a_sitemap_site_is_synced_politely_and_without_chrome(
    db_url: str, kb: KnowledgeBase, site: FixtureSite
) -> None:
    sync = _sync(db_url, kb, site)

    (first,) = await sync.sync()

    assert first.error is None
    assert (first.added, first.updated, first.removed, first.unchanged) == (3, 0, 0, 0)
    assert "/private/secret" not in {h.path for h in site.hits}  # robots.txt said no
    text = await _index_text(kb.db)
    assert "STAFF90" not in text
    for chrome in CHROME:
        assert chrome not in text
    assert "Terms" not in text and "Home" not in text
    assert "within five business days" in text
    documents = {d.title: d for d in await list_documents(kb, source="site")}
    assert documents["Refunds"].url == site.base_url + "/docs/refunds"
    passages = await kb.search("how long does a refund take to reach my card")
    assert passages[0].source == site.base_url + "/docs/refunds"

    # A second sync: every request is conditional and answered 304; nothing changes.
    site.hits.clear()
    (second,) = await sync.sync()
    assert (second.added, second.updated, second.removed, second.unchanged) == (0, 0, 0, 3)
    assert site.hits and all(h.if_none_match and h.status == 304 for h in site.hits), site.hits
    assert {d.id: d.updated_at for d in await list_documents(kb)} == {
        d.id: d.updated_at for d in documents.values()
    }

    # A changed page is re-indexed; a page gone from the sitemap (and the site) is removed.
    site.files["/docs/webhooks"] = ("text/html", page(
        "Webhooks",
        "Failed webhook deliveries are retried for five days with exponential backoff.",
    ))
    site.sitemap("/sitemaps/docs.xml", "/docs/refunds", "/private/secret")
    del site.files["/docs/sso"]
    site.hits.clear()
    (third,) = await sync.sync()
    assert (third.added, third.updated, third.removed, third.unchanged) == (0, 1, 1, 1)
    assert {h.path: h.status for h in site.hits}["/docs/refunds"] == 304
    text = await _index_text(kb.db)
    assert "five days" in text and "three days" not in text and "SAML" not in text
    assert sorted(d.title for d in await list_documents(kb)) == ["Refunds", "Webhooks"]


async def test_a_page_that_fails_leaves_the_previous_index_serving(
    db_url: str, kb: KnowledgeBase, site: FixtureSite
) -> None:
    sync = _sync(db_url, kb, site)
    await sync.sync()
    before = await list_documents(kb)
    site.sitemap("/sitemaps/more.xml")  # webhooks leaves the sitemap …
    site.fail.add("/docs/sso")  # … but the site is half down: nothing may be applied

    (report,) = await sync.sync()

    assert report.error is not None and "HTTP 500" in report.error
    assert await list_documents(kb) == before


async def test_a_url_list_is_read_with_robots_honoured(
    db_url: str, kb: KnowledgeBase, site: FixtureSite
) -> None:
    settings = make_settings(db_url, knowledge={"sources": [{
        "name": "pages",
        "kind": "urls",
        "urls": [site.base_url + "/docs/sso", site.base_url + "/private/secret"],
    }]})
    (report,) = await KnowledgeSync(kb, settings).sync()
    assert (report.added, report.error) == (1, None)
    assert [d.title for d in await list_documents(kb)] == ["Single sign-on"]
    assert "/private/secret" not in {h.path for h in site.hits}


async def test_a_page_answering_429_is_asked_again_after_its_retry_after(
    db_url: str, kb: KnowledgeBase, site: FixtureSite
) -> None:
    site.busy["/docs/sso"] = 1
    sync = _sync(db_url, kb, site, retry_backoff_seconds=0.01)

    started = time.monotonic()
    (report,) = await sync.sync()
    waited = time.monotonic() - started

    assert (report.added, report.error) == (3, None)
    assert [h.status for h in site.hits if h.path == "/docs/sso"] == [429, 200]
    assert waited >= 1.0  # the Retry-After, not the 10 ms backoff
    assert "Single sign-on" in {d.title for d in await list_documents(kb)}
