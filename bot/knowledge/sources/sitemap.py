"""A website as a knowledge source: the pages a sitemap lists (``sitemap``), or a URL list
(``urls``).

Polite and cheap by construction: ``robots.txt`` is honoured for every request (the sitemap
too); only pages on the sitemap's own site are read, and a redirect off the site is not
followed; requests are bounded in flight (``concurrency``) and in rate
(``requests_per_second``), and a 429 or 503 is asked again after its ``Retry-After``
(``with_retries``); a page the index already holds is asked for with its ``ETag`` /
``Last-Modified``, so an unchanged page costs a 304 and no parsing. The same source object keeps
robots.txt and sitemaps with their validators between syncs, so those are conditional too.

A page's main content is extracted by trafilatura (navigation, footers, cookie banners and
other page chrome stay out of the index), as Markdown, then read like any Markdown file.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import aiohttp
from aiolimiter import AsyncLimiter
from lxml import etree

from bot.config import KnowledgeSourceSettings
from bot.knowledge.documents import ParsedDocument, parse
from bot.knowledge.sources import (
    Fetched,
    KnownDocument,
    SourceDocument,
    SourceError,
    status_error,
    with_retries,
)

log = logging.getLogger(__name__)

MAX_SITEMAPS = 100
MAX_SITEMAP_DEPTH = 3
MAX_REDIRECTS = 5
MAX_BODY_BYTES = 10 * 1024 * 1024
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True, slots=True)
class _Cached:
    etag: str | None
    last_modified: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class _Answer:
    """One GET's outcome: ``status`` 200 (with body), 304, a page that is gone (404/410), or
    a redirect (to ``location``)."""

    status: int
    url: str
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    location: str = ""  # where a redirect points


_REDIRECTS = (301, 302, 303, 307, 308)


class WebsiteSource:
    """Reads one site's pages; keep the object between syncs to make robots.txt and sitemap
    requests conditional too."""

    def __init__(self, source: KnowledgeSourceSettings):
        self._source = source
        self._cache: dict[str, _Cached] = {}
        self._robots: dict[str, RobotFileParser] = {}
        self._requests = 0

    def location(self, url: str) -> str:
        return f"site:{self._source.name}:{url}"

    async def fetch(self, known: Mapping[str, KnownDocument]) -> Fetched:
        source = self._source
        self._requests = 0
        self._robots = {}
        self._limiter = AsyncLimiter(1, 1.0 / source.requests_per_second)
        self._gate = asyncio.Semaphore(source.concurrency)
        timeout = aiohttp.ClientTimeout(total=source.timeout_seconds)
        headers = {"User-Agent": source.user_agent}
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            if source.kind == "sitemap":
                assert source.url is not None
                urls = await self._sitemap_urls(session, source.url)
            else:
                urls = list(dict.fromkeys(_normal(u) for u in source.urls))
            if len(urls) > source.max_pages:
                raise SourceError(f"{len(urls)} pages listed; max_pages is {source.max_pages}")
            allowed = [u for u in urls if await self._allowed(session, u)]
            answers = await asyncio.gather(
                *(self._page(session, url, known.get(self.location(url))) for url in allowed)
            )
        fetched = Fetched(requests=self._requests)
        for url, answer in zip(allowed, answers):
            if answer is None:
                continue
            if answer.status == 304:
                fetched.unchanged.add(self.location(url))
                continue
            document = await asyncio.to_thread(_page_document, answer.body, url)
            if document is None:
                log.warning("knowledge %s: no main content in %s", source.name, url)
                continue
            fetched.documents.append(
                SourceDocument(
                    location=self.location(url),
                    source=url,
                    document=document,
                    etag=answer.etag,
                    last_modified=answer.last_modified,
                )
            )
        return fetched

    # -- what to read -----------------------------------------------------------------------

    async def _sitemap_urls(self, session: aiohttp.ClientSession, root: str) -> list[str]:
        """The page URLs a sitemap (or a sitemap index, nested up to three levels) lists on
        the sitemap's own site."""
        site = _site(root)
        pages: list[str] = []
        queue = [(_normal(root), 0)]
        seen: set[str] = set()
        while queue:
            url, depth = queue.pop(0)
            if url in seen or len(seen) >= MAX_SITEMAPS:
                continue
            seen.add(url)
            if not await self._allowed(session, url):
                continue
            body = await self._cached_get(session, url)
            if body is None:
                raise SourceError(f"sitemap {url} is gone")
            kind, locations = _read_sitemap(body, url)
            for location in locations:
                if _site(location) != site:
                    continue  # same site only: a sitemap may list anything
                if kind == "index":
                    if depth + 1 < MAX_SITEMAP_DEPTH:
                        queue.append((location, depth + 1))
                else:
                    pages.append(location)
        return list(dict.fromkeys(pages))

    async def _allowed(self, session: aiohttp.ClientSession, url: str) -> bool:
        site = _site(url)
        robots = self._robots.get(site)
        if robots is None:
            robots = RobotFileParser(site + "/robots.txt")
            body = await self._cached_get(session, site + "/robots.txt")
            # No robots.txt (404/410) allows everything; an unreadable one is an error.
            robots.parse((body or b"").decode("utf-8", errors="replace").splitlines())
            self._robots[site] = robots
        allowed = robots.can_fetch(self._source.user_agent, url)
        if not allowed:
            log.info("knowledge %s: robots.txt disallows %s", self._source.name, url)
        return allowed

    async def _cached_get(self, session: aiohttp.ClientSession, url: str) -> bytes | None:
        """A robots.txt or sitemap, conditionally when this object read it before; None when
        it is gone."""
        cached = self._cache.get(url)
        answer = await self._get(
            session, url, cached.etag if cached else None, cached.last_modified if cached else None
        )
        if answer.status == 304 and cached is not None:
            return cached.body
        if answer.status != 200:
            self._cache.pop(url, None)
            return None
        self._cache[url] = _Cached(answer.etag, answer.last_modified, answer.body)
        return answer.body

    async def _page(
        self, session: aiohttp.ClientSession, url: str, known: KnownDocument | None
    ) -> _Answer | None:
        answer = await self._get(
            session, url, known.etag if known else None, known.last_modified if known else None
        )
        if answer.status == 304 and known is not None:
            return answer
        if answer.status != 200:
            return None  # gone: removed from the index
        if not answer.content_type.startswith(_HTML_TYPES):
            log.warning("knowledge %s: %s is %s, not HTML", self._source.name, url,
                        answer.content_type or "untyped")
            return None
        return answer

    async def _get(
        self,
        session: aiohttp.ClientSession,
        url: str,
        etag: str | None,
        last_modified: str | None,
    ) -> _Answer:
        """GET within the site, following same-site redirects that robots.txt allows.

        Raises ``SourceError`` for anything but 200, 304, 404 and 410 (after the retries a 429
        or 503 gets): a sync that cannot tell whether a page is still there must not remove it.
        """
        conditional = {}
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            answer = await with_retries(
                self._source, functools.partial(self._once, session, target, conditional)
            )
            if answer.status not in _REDIRECTS:
                return answer
            following = _normal(urljoin(target, answer.location))
            if _site(following) != _site(url):
                log.warning("knowledge %s: %s redirects off the site", self._source.name, url)
                return _Answer(404, target)
            # The robots.txt of the same site is already parsed: this needs no request.
            robots = self._robots.get(_site(url))
            if robots is not None and not robots.can_fetch(self._source.user_agent, following):
                return _Answer(404, target)
            target = following
        raise SourceError(f"GET {url}: more than {MAX_REDIRECTS} redirects")

    async def _once(
        self, session: aiohttp.ClientSession, target: str, conditional: Mapping[str, str]
    ) -> _Answer:
        """One request, within the concurrency and rate bounds (a retry waits outside them)."""
        async with self._gate:
            await self._limiter.acquire()
            self._requests += 1
            try:
                async with session.get(
                    target, headers=conditional, allow_redirects=False
                ) as response:
                    status = response.status
                    if status in _REDIRECTS:
                        return _Answer(status, target, location=response.headers.get("Location", ""))
                    if status == 200:
                        body = await response.content.read(MAX_BODY_BYTES + 1)
                        if len(body) > MAX_BODY_BYTES:
                            raise SourceError(f"{target}: larger than {MAX_BODY_BYTES} bytes")
                        return _Answer(
                            200,
                            target,
                            body,
                            response.content_type,
                            response.headers.get("ETag"),
                            response.headers.get("Last-Modified"),
                        )
                    if status in (304, 404, 410):
                        return _Answer(status, target)
                    raise status_error(f"GET {target}", status, response.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise SourceError(f"GET {target}: {type(exc).__name__}") from exc


def _site(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


def _normal(url: str) -> str:
    return urldefrag(url.strip())[0]


def _read_sitemap(body: bytes, url: str) -> tuple[str, list[str]]:
    """(``index`` or ``urlset``, the ``<loc>`` URLs) of a sitemap, gzipped or not."""
    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise SourceError(f"sitemap {url}: bad gzip") from exc
    # No entities, no network, no huge trees: a sitemap is data from outside.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise SourceError(f"sitemap {url}: not XML ({exc})") from exc
    tag = etree.QName(root).localname
    if tag not in ("sitemapindex", "urlset"):
        raise SourceError(f"sitemap {url}: <{tag}> is neither a urlset nor a sitemapindex")
    child = "sitemap" if tag == "sitemapindex" else "url"
    locations = []
    for element in root.iter(f"{_SITEMAP_NS}{child}", child):
        for loc in element.iter(f"{_SITEMAP_NS}loc", "loc"):
            if loc.text and loc.text.strip():
                locations.append(_normal(urljoin(url, loc.text.strip())))
    return ("index" if tag == "sitemapindex" else "urlset"), locations


def _page_document(body: bytes, url: str) -> ParsedDocument | None:
    """The page's main content as a document titled by the page, or None when there is none."""
    import trafilatura

    html = body.decode("utf-8", errors="replace")
    markdown = trafilatura.extract(
        html,
        url=url,
        output_format="markdown",
        include_comments=False,
        include_tables=True,
        favor_precision=True,
    )
    if not markdown or not markdown.strip():
        return None
    metadata = trafilatura.extract_metadata(html, default_url=url)
    title = (metadata.title if metadata is not None else None) or ""
    if not markdown.lstrip().startswith("# "):
        heading = title or urlsplit(url).path.strip("/").rsplit("/", 1)[-1] or url
        markdown = f"# {heading}\n\n{markdown}"
    parsed = parse(Path("page.md"), markdown.encode())
    return ParsedDocument(title or parsed.title, "page", parsed.sections)
