"""An Intercom Help Center as a knowledge source (REST API 2.14, read only).

``GET /help_center/help_centers`` and ``GET /help_center/collections`` (paged) say where each
article is published: only an article in a collection (or a section of one) of a help center
whose site is turned on is public, so only those are read — a standalone article, or one in a
help center that is switched off, is not something a customer can open. ``GET /articles``
(paged) lists the articles with their content; ``GET /articles/{id}`` fills in an article the
list gave without a body. Each published locale of an article (``translated_content``) is one
document, cited by its public ``url`` and filed under its collection's breadcrumb
("Collection › Section"); drafts are never read into the index, and an article that goes back
to draft (or is deleted, or leaves every published collection) disappears from the next sync.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from bot.config import IntercomSettings, KnowledgeSourceSettings
from bot.knowledge.documents import ParsedDocument, parse
from bot.knowledge.sources import (
    Fetched,
    SourceDocument,
    SourceError,
    status_error,
    with_retries,
)

log = logging.getLogger(__name__)

PER_PAGE = 50
# A guard against a server whose paging never ends.
MAX_PAGES = 1000

JSON = dict[str, Any]


class HelpCenterSource:
    """Reads one Intercom workspace's published Help Center articles."""

    def __init__(self, source: KnowledgeSourceSettings, intercom: IntercomSettings):
        if intercom.token is None:
            raise SourceError(
                f"knowledge source {source.name!r} reads Intercom: set intercom.token"
            )
        self._source = source
        self._base_url = intercom.base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {intercom.token.get_secret_value()}",
            "Intercom-Version": intercom.api_version,
            "Accept": "application/json",
        }
        self._locales = set(source.locales) if source.locales is not None else None
        self._requests = 0

    async def fetch(self, known: Mapping[str, object]) -> Fetched:
        """Every published article of a published collection, per locale (``known`` is not
        needed: the list carries each article's content, and the content hash tells what
        changed)."""
        self._requests = 0
        timeout = aiohttp.ClientTimeout(total=self._source.timeout_seconds)
        async with aiohttp.ClientSession(headers=self._headers, timeout=timeout) as session:
            places = await self._published_collections(session)
            fetched = Fetched()
            for article in await self._list(session, "/articles"):
                place = _place(article, places)
                if place is None:
                    log.debug("knowledge %s: article %s is in no published collection",
                              self._source.name, article.get("id"))
                    continue
                if article.get("body") is None and article.get("translated_content") is None:
                    article = await self._get(session, f"/articles/{article['id']}")
                fetched.documents.extend(self._documents(article, place))
        fetched.requests = self._requests
        return fetched

    async def _published_collections(self, session: aiohttp.ClientSession) -> dict[str, str]:
        """The breadcrumb ("Collection › Section") of every collection and section whose
        top collection is in a help center with its site turned on, by id."""
        centers = (await self._get(session, "/help_center/help_centers")).get("data") or []
        live = {
            str(center.get("id"))
            for center in centers
            if isinstance(center, dict) and center.get("website_turned_on") is not False
        }
        collections = {
            str(c["id"]): c for c in await self._list(session, "/help_center/collections")
            if c.get("id") is not None
        }
        places: dict[str, str] = {}
        for collection_id, collection in collections.items():
            names: list[str] = []
            current: JSON | None = collection
            while current is not None and len(names) <= len(collections):
                names.append(str(current.get("name") or "").strip())
                parent = current.get("parent_id")
                if parent is None:
                    break
                current = collections.get(str(parent))
            # A top collection names its help center; a section (or a broken chain) does not.
            if current is not None and str(current.get("help_center_id")) in live:
                places[collection_id] = " › ".join(n for n in reversed(names) if n)
        return places

    def _documents(self, article: JSON, place: str) -> list[SourceDocument]:
        article_id = str(article["id"])
        contents: dict[str, JSON] = {}
        translated = article.get("translated_content")
        if isinstance(translated, dict):
            contents = {
                locale: content
                for locale, content in translated.items()
                if locale != "type" and isinstance(content, dict)
            }
        if not contents:  # a help center in one language: the article itself is the content
            contents = {str(article.get("default_locale") or "default"): article}
        documents = []
        for locale, content in sorted(contents.items()):
            if self._locales is not None and locale not in self._locales:
                continue
            if content.get("state") != "published" or not content.get("url"):
                continue  # drafts never reach customers, and a citation needs the public URL
            documents.append(
                SourceDocument(
                    location=f"intercom:{self._source.name}:{article_id}:{locale}",
                    source=str(content["url"]),
                    document=_article_document(content),
                    section=place or None,
                )
            )
        return documents

    async def _list(self, session: aiohttp.ClientSession, path: str) -> list[JSON]:
        items: list[JSON] = []
        for page in range(1, MAX_PAGES + 1):
            data = await self._get(session, path, {"page": str(page), "per_page": str(PER_PAGE)})
            items.extend(item for item in data.get("data") or [] if isinstance(item, dict))
            pages = data.get("pages") or {}
            if page >= int(pages.get("total_pages") or 1):
                return items
        raise SourceError(f"{path}: more than {MAX_PAGES} pages")

    async def _get(
        self, session: aiohttp.ClientSession, path: str, query: Mapping[str, str] | None = None
    ) -> JSON:
        """One GET, tried again after a 429 or 502–504 (never sooner than its Retry-After)."""
        return await with_retries(
            self._source, functools.partial(self._once, session, path, query)
        )

    async def _once(
        self, session: aiohttp.ClientSession, path: str, query: Mapping[str, str] | None
    ) -> JSON:
        self._requests += 1
        what = f"Intercom GET {path}"
        try:
            async with session.get(self._base_url + path, params=query) as response:
                if response.status != 200:
                    # The body may echo the request; only the status goes into the report.
                    raise status_error(what, response.status, response.headers.get("Retry-After"))
                data = await response.json()
        except aiohttp.ClientError as exc:
            raise SourceError(f"{what}: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise SourceError(f"{what}: not a JSON object")
        return data


def _place(article: JSON, places: Mapping[str, str]) -> str | None:
    """The breadcrumb of the first published collection the article is in; None when it is
    in none (standalone, or only in help centers that are switched off)."""
    parents = [str(p) for p in article.get("parent_ids") or [] if p is not None]
    if article.get("parent_id") is not None:
        parents.insert(0, str(article["parent_id"]))
    for parent in parents:
        if parent in places:
            return places[parent]
    return None


def _article_document(content: JSON) -> ParsedDocument:
    """An article's HTML body as sections under its title, the way the same article saved as a
    file (``<h1>`` title, then the body) reads: the same question finds the same passage."""
    title = str(content.get("title") or "Untitled article")
    description = str(content.get("description") or "").strip()
    page = f"<h1>{html.escape(title)}</h1>"
    if description:
        page += f"<p>{html.escape(description)}</p>"
    page += str(content.get("body") or "")
    parsed = parse(Path("article.html"), page.encode())
    return ParsedDocument(title, "article", parsed.sections)
