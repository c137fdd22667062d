"""A fake Intercom REST API (version 2.14) over real HTTP on 127.0.0.1.

It keeps admins, contacts, companies, tags and conversations, answers in Intercom's shapes,
records every request, and validates every request against Intercom's official OpenAPI
description (vendored as ``tests/fakes/specs/intercom-api-2.14.yaml``) with openapi-core: a violation is
answered 400 and kept in ``violations`` (the fixtures fail the test on any). It also checks the
pinned ``Intercom-Version`` and the bearer token. Tests script it: add contacts, start
conversations, write as the customer or a human admin, build webhook notifications, keep a Help
Center (help centers, collections and sections, articles with translations), and make the next N
requests to a path answer 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.exceptions import RequestValidationError
from openapi_core.validation.response.exceptions import ResponseValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_PATH = Path(__file__).resolve().parent / "specs" / "intercom-api-2.14.yaml"
SPEC_SERVER = "https://api.intercom.io"

JSON = dict[str, Any]


@functools.cache
def intercom_openapi() -> OpenAPI:
    """Intercom's OpenAPI, parsed once per test session (it is 900 kB of YAML)."""
    with SPEC_PATH.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    # The published description has unresolvable path parameters on endpoints we never call;
    # the operations we use are validated, not the document as a whole.
    return OpenAPI.from_dict(data, config=Config(spec_validator_cls=None))


class _SpecRequest:
    """What openapi-core needs to know about one request, addressed to Intercom's own server."""

    def __init__(self, request: web.Request, body: bytes):
        self.host_url = SPEC_SERVER
        self.path = request.path
        self.method = request.method.lower()
        self.body = body or None
        self.content_type = request.content_type if body else "application/json"
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.query.items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


class _SpecResponse:
    def __init__(self, response: web.Response):
        body = response.body
        self.data = body if isinstance(body, bytes) else b""
        self.status_code = response.status
        self.content_type = response.content_type
        self.headers = Headers(list(response.headers.items()))


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    status: int = 0


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    retry_after: float | None
    delay: float = 0.0
    # Held back, then carried out as usual (``stall``), rather than answered ``status``.
    stall: bool = False


@dataclass
class _Conversation:
    id: str
    contact_id: str
    created_at: int
    updated_at: int
    source: JSON
    parts: list[JSON] = field(default_factory=list)
    state: str = "open"
    admin_assignee_id: int | None = None
    team_assignee_id: int | None = None
    waiting_since: int | None = None
    snoozed_until: int | None = None
    tag_ids: list[str] = field(default_factory=list)


class FakeIntercom:
    """Start with ``await fake.start()`` (gives ``base_url``), stop with ``await fake.close()``."""

    def __init__(self, *, token: str = "test-token", api_version: str = "2.14"):
        self.token = token
        self.api_version = api_version
        self.bot_admin_id = "991000001"
        self.human_admin_id = "991000002"
        self.team_id = "5017691"
        self.admins: dict[str, JSON] = {
            self.bot_admin_id: {"name": "Support Bot", "email": "bot@example.com"},
            self.human_admin_id: {"name": "Hannah Human", "email": "hannah@example.com"},
        }
        self.contacts: dict[str, JSON] = {}
        self.companies: dict[str, list[JSON]] = {}
        self.tags: dict[str, str] = {"100": "vip"}
        self.conversations: dict[str, _Conversation] = {}
        # Help centers and their collections (sections are collections with a parent), in
        # Intercom's shapes; one help center with one collection to begin with, where
        # ``add_article`` puts an article unless told otherwise.
        self.help_centers: dict[str, JSON] = {}
        self.collections: dict[str, JSON] = {}
        # Help Center articles by id, in Intercom's article shape (``add_article``).
        self.articles: dict[str, JSON] = {}
        # ``GET /articles`` without bodies (both fields are nullable in the spec): the reader must
        # then fetch each article.
        self.list_articles_without_content = False
        self.help_center_url = "https://help.acme.test"
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self._failures: list[_Failure] = []
        self._translations: dict[str, dict[str, JSON]] = {}
        self._ids = itertools.count(1000)
        self._clock = int(time.time()) - 600
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.help_center_id = self.add_help_center("Acme Help")
        self.collection_id = self.add_collection("General")

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> str:
        intercom_openapi()  # parse before the first request, not during it
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/me", self._me)
        app.router.add_get("/conversations/{id}", self._find_conversation)
        app.router.add_post("/conversations/search", self._search)
        app.router.add_post("/conversations/{id}/reply", self._reply)
        app.router.add_post("/conversations/{id}/parts", self._manage)
        app.router.add_post("/conversations/{id}/tags", self._tag)
        app.router.add_delete("/conversations/{id}/tags/{tag_id}", self._untag)
        app.router.add_get("/tags", self._list_tags)
        app.router.add_post("/tags", self._create_tag)
        app.router.add_get("/contacts/{id}", self._contact)
        app.router.add_get("/contacts/{id}/companies", self._contact_companies)
        app.router.add_get("/articles", self._list_articles)
        app.router.add_get("/articles/{id}", self._find_article)
        app.router.add_get("/help_center/help_centers", self._list_help_centers)
        app.router.add_get("/help_center/collections", self._list_collections)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- scripting --------------------------------------------------------------------------

    def now(self) -> int:
        """A clock that moves one second per event, so parts are strictly ordered."""
        self._clock = max(self._clock + 1, int(time.time()))
        return self._clock

    def new_id(self) -> str:
        return str(next(self._ids))

    def add_contact(
        self,
        name: str = "Joe Bloggs",
        email: str | None = None,
        *,
        role: str = "user",
        plan: str | None = "pro",
        company: str | None = "Bloggs Ltd",
    ) -> str:
        contact_id = uuid.uuid4().hex[:24]
        custom = {"plan": plan} if plan else {}
        self.contacts[contact_id] = {
            "name": name,
            "email": email or f"{name.split()[0].lower()}@example.com",
            "role": role,
            "custom_attributes": custom,
        }
        if company:
            self.companies[contact_id] = [
                {
                    "type": "company",
                    "id": uuid.uuid4().hex[:24],
                    "company_id": "c-" + contact_id[:6],
                    "name": company,
                    "plan": {"type": "plan", "id": "1", "name": "Enterprise"},
                    "monthly_spend": 1000,
                    "user_count": 12,
                    "custom_attributes": {},
                }
            ]
        return contact_id

    def start_conversation(
        self, contact_id: str, body: str, *, attachments: list[JSON] | None = None
    ) -> str:
        """The customer writes first: the message is the conversation's ``source``."""
        at = self.now()
        conversation_id = self.new_id()
        self.conversations[conversation_id] = _Conversation(
            id=conversation_id,
            contact_id=contact_id,
            created_at=at,
            updated_at=at,
            waiting_since=at,
            source={
                "type": "conversation",
                "id": self.new_id(),
                "delivered_as": "customer_initiated",
                "subject": "",
                "body": body,
                "author": self._contact_author(contact_id),
                "attachments": attachments or [],
                "url": None,
                "redacted": False,
            },
        )
        return conversation_id

    def user_reply(
        self, conversation_id: str, body: str, *, attachments: list[JSON] | None = None
    ) -> str:
        conversation = self.conversations[conversation_id]
        part_type = "comment"
        if conversation.state == "closed":
            conversation.state = "open"  # writing in a closed conversation reopens it
            part_type = "open"
        at = self.now()
        part = self._part(part_type, body, self._contact_author(conversation.contact_id), at)
        part["attachments"] = attachments or []
        conversation.parts.append(part)
        conversation.updated_at = at
        conversation.waiting_since = conversation.waiting_since or at
        return str(part["id"])

    def admin_reply(self, conversation_id: str, body: str, *, admin_id: str | None = None) -> str:
        conversation = self.conversations[conversation_id]
        at = self.now()
        part = self._part("comment", body, self._admin_author(admin_id or self.human_admin_id), at)
        conversation.parts.append(part)
        conversation.updated_at = at
        conversation.waiting_since = None
        return str(part["id"])

    def other_bot_part(
        self, conversation_id: str, body: str, *, part_type: str = "quick_reply"
    ) -> str:
        """A part written by another bot in the workspace (a workflow offering choices)."""
        conversation = self.conversations[conversation_id]
        at = self.now()
        author = {"type": "bot", "id": "8001", "name": "Workflow Bot", "email": "operator+abc123@intercom.io"}
        part = self._part(part_type, body, author, at)
        conversation.parts.append(part)
        conversation.updated_at = at
        return str(part["id"])

    def assign(self, conversation_id: str, admin_id: str, *, by: str | None = None) -> str:
        conversation = self.conversations[conversation_id]
        at = self.now()
        part = self._part("assignment", None, self._admin_author(by or self.human_admin_id), at)
        part["assigned_to"] = {"type": "admin", "id": admin_id}
        conversation.parts.append(part)
        conversation.admin_assignee_id = int(admin_id)
        conversation.updated_at = at
        return str(part["id"])

    def close_by_admin(self, conversation_id: str, *, admin_id: str | None = None) -> str:
        conversation = self.conversations[conversation_id]
        at = self.now()
        part = self._part("close", None, self._admin_author(admin_id or self.human_admin_id), at)
        conversation.parts.append(part)
        conversation.state = "closed"
        conversation.updated_at = at
        return str(part["id"])

    def add_help_center(self, name: str, *, website_turned_on: bool = True) -> str:
        """A help center (``website_turned_on`` False: its site is off, nobody can read it)."""
        help_center_id = str(len(self.help_centers) + 79)
        identifier = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        self.help_centers[help_center_id] = {
            "id": help_center_id,
            "workspace_id": "abc123",
            "created_at": self._clock,
            "updated_at": self._clock,
            "identifier": identifier,
            "website_turned_on": website_turned_on,
            "display_name": name,
            "url": f"{self.help_center_url}/{identifier}",
            "custom_domain": None,
        }
        return help_center_id

    def add_collection(
        self, name: str, *, help_center_id: str | None = None, parent_id: str | None = None
    ) -> str:
        """A collection of ``help_center_id`` (default: the first help center), or a section
        of collection ``parent_id`` (a section names no help center, like Intercom's)."""
        collection_id = self.new_id()
        at = self.now()
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        self.collections[collection_id] = {
            "id": collection_id,
            "workspace_id": "abc123",
            "name": name,
            "description": None,
            "created_at": at,
            "updated_at": at,
            "url": f"{self.help_center_url}/en/collections/{collection_id}-{slug}",
            "icon": "book-bookmark",
            "order": len(self.collections),
            "default_locale": "en",
            "parent_id": parent_id,
            "help_center_id": None
            if parent_id is not None
            else int(help_center_id or next(iter(self.help_centers))),
        }
        return collection_id

    def add_article(
        self,
        title: str,
        body: str,
        *,
        state: str = "published",
        description: str | None = None,
        parent_id: str | None = None,
        standalone: bool = False,
        translations: dict[str, JSON] | None = None,
    ) -> str:
        """A Help Center article in collection (or section) ``parent_id`` — the first
        collection by default, none if ``standalone``; ``translations`` maps other locales to
        ``{title, body, state}`` (the default locale, ``en``, is the article's own fields)."""
        article_id = self.new_id()
        at = self.now()
        if parent_id is None and not standalone:
            parent_id = self.collection_id
        self.articles[article_id] = {
            "type": "article",
            "id": article_id,
            "workspace_id": "abc123",
            "title": title,
            "description": description,
            "body": body,
            "author_id": int(self.human_admin_id),
            "state": state,
            "created_at": at,
            "updated_at": at,
            "url": self._article_url(article_id, "en", title) if state == "published" else None,
            "parent_id": int(parent_id) if parent_id else None,
            "parent_ids": [int(parent_id)] if parent_id else [],
            "parent_type": (
                None
                if not parent_id
                else "section"
                if self.collections[parent_id]["parent_id"]
                else "collection"
            ),
            "default_locale": "en",
        }
        self._translations[article_id] = dict(translations or {})
        return article_id

    def edit_article(self, article_id: str, **fields: Any) -> None:
        """Change an article's default-locale fields (``title``, ``body``, ``state`` …)."""
        article = self.articles[article_id]
        article.update(fields)
        article["updated_at"] = self.now()
        if article["state"] == "published":
            article["url"] = self._article_url(article_id, "en", article["title"])

    def delete_article(self, article_id: str) -> None:
        del self.articles[article_id]

    def _article_url(self, article_id: str, locale: str, title: str) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        return f"{self.help_center_url}/{locale}/articles/{article_id}-{slug}"

    def article_json(self, article_id: str) -> JSON:
        article = dict(self.articles[article_id])
        content: JSON = {"type": "article_translated_content"}
        for locale, fields in [("en", article), *self._translations[article_id].items()]:
            state = str(fields.get("state", "published"))
            content[locale] = {
                "type": "article_content",
                "title": fields["title"],
                "description": fields.get("description") or "",
                "body": fields["body"],
                "author_id": article["author_id"],
                "state": state,
                "created_at": article["created_at"],
                "updated_at": article["updated_at"],
                "url": self._article_url(article_id, locale, str(fields["title"])),
            }
        article["translated_content"] = content
        return article

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 429,
        times: int = 1,
        retry_after: float | None = 1,
        delay: float = 0.0,
    ) -> None:
        """The next ``times`` requests matching ``method`` and the ``path`` regex answer
        ``status`` (with ``Retry-After`` when given); ``delay`` holds the answer back, and with
        status 200 the request is carried out first (a success the client may time out on)."""
        self._failures.append(
            _Failure(method.upper(), re.compile(path), status, times, retry_after, delay)
        )

    def stall(self, method: str, path: str, *, seconds: float, times: int = 1) -> None:
        """The next ``times`` requests matching ``method`` and the ``path`` regex wait
        ``seconds`` before they take effect and are answered (a helpdesk slow to carry out a
        send: until then, nobody looking at the conversation can see it)."""
        self._failures.append(
            _Failure(method.upper(), re.compile(path), 200, times, None, seconds, stall=True)
        )

    def heal(self) -> None:
        """Forget every scripted failure still pending."""
        self._failures.clear()

    def notification(self, topic: str, conversation_id: str, *, parts: int = 1) -> JSON:
        """A webhook notification as Intercom sends it: the conversation with only its newest
        ``parts`` parts (none for ``conversation.user.created``)."""
        item = self.conversation_json(
            conversation_id, parts=0 if topic.endswith(".created") else parts
        )
        at = self.now()
        return {
            "type": "notification_event",
            "app_id": "abc123",
            "data": {"type": "notification_event_data", "item": item},
            "links": {},
            "id": f"notif_{uuid.uuid4()}",
            "topic": topic,
            "delivery_status": "pending",
            "delivery_attempts": 1,
            "delivered_at": 0,
            "first_sent_at": at,
            "created_at": at,
            "self": None,
        }

    # -- what tests read back ----------------------------------------------------------------

    def parts_by(
        self, conversation_id: str, *, admin_id: str | None = None, part_type: str | None = None
    ) -> list[JSON]:
        admin_id = admin_id or self.bot_admin_id
        return [
            p
            for p in self.conversations[conversation_id].parts
            if p["author"]["type"] == "admin"
            and p["author"]["id"] == admin_id
            and (part_type is None or p["part_type"] == part_type)
        ]

    def replies(self, conversation_id: str) -> list[JSON]:
        return self.parts_by(conversation_id, part_type="comment")

    def notes(self, conversation_id: str) -> list[JSON]:
        return self.parts_by(conversation_id, part_type="note")

    def tag_names(self, conversation_id: str) -> list[str]:
        return [self.tags[t] for t in self.conversations[conversation_id].tag_ids]

    def calls(self, method: str, path_regex: str) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    # -- shapes -----------------------------------------------------------------------------

    def _contact_author(self, contact_id: str) -> JSON:
        contact = self.contacts[contact_id]
        return {
            "type": contact["role"],
            "id": contact_id,
            "name": contact["name"],
            "email": contact["email"],
        }

    def _admin_author(self, admin_id: str) -> JSON:
        admin = self.admins.get(admin_id, {"name": "Someone", "email": "someone@example.com"})
        return {"type": "admin", "id": admin_id, "name": admin["name"], "email": admin["email"]}

    def _part(self, part_type: str, body: str | None, author: JSON, at: int) -> JSON:
        return {
            "type": "conversation_part",
            "id": self.new_id(),
            "part_type": part_type,
            "body": body,
            "created_at": at,
            "updated_at": at,
            "notified_at": at,
            "assigned_to": None,
            "author": author,
            "attachments": [],
            "external_id": None,
            "redacted": False,
        }

    def conversation_json(self, conversation_id: str, *, parts: int | None = None) -> JSON:
        """The conversation as ``GET /conversations/{id}`` answers (``parts``: only the newest
        N parts, as webhook items carry; None: all, at most 500)."""
        c = self.conversations[conversation_id]
        chosen = c.parts[-500:] if parts is None else (c.parts[-parts:] if parts else [])
        contact_replies = [
            p["created_at"] for p in c.parts if p["author"]["type"] in ("user", "lead")
        ]
        admin_replies = [
            p["created_at"]
            for p in c.parts
            if p["author"]["type"] == "admin" and p["part_type"] == "comment"
        ]
        return {
            "type": "conversation",
            "id": c.id,
            "title": None,
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "waiting_since": c.waiting_since,
            "snoozed_until": c.snoozed_until,
            "open": c.state != "closed",
            "state": c.state,
            "read": False,
            "priority": "not_priority",
            "admin_assignee_id": c.admin_assignee_id,
            "team_assignee_id": c.team_assignee_id,
            "tags": {
                "type": "tag.list",
                "tags": [{"type": "tag", "id": t, "name": self.tags[t]} for t in c.tag_ids],
            },
            "source": c.source,
            "contacts": {
                "type": "contact.list",
                "contacts": [{"type": "contact", "id": c.contact_id, "external_id": None}],
            },
            "teammates": None,
            "custom_attributes": {},
            "statistics": {
                "type": "conversation_statistics",
                "last_contact_reply_at": max(contact_replies, default=c.created_at),
                **({"last_admin_reply_at": max(admin_replies)} if admin_replies else {}),
            },
            "conversation_parts": {
                "type": "conversation_part.list",
                "conversation_parts": chosen,
                "total_count": len(chosen),
            },
        }

    def _public(self, conversation_id: str, *, parts: int | None = None) -> JSON:
        return self.conversation_json(conversation_id, parts=parts)

    # -- the HTTP side ----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed: Any = json.loads(body) if body else None
        except json.JSONDecodeError:
            parsed = body.decode(errors="replace")
        record = RecordedRequest(request.method, request.path, parsed, dict(request.headers))
        self.requests.append(record)
        problem = self._check(request, body)
        if problem:
            self.violations.append(f"{request.method} {request.path}: {problem}")
            record.status = 400
            return _error(400, "parameter_invalid", problem)
        for failure in self._failures:
            if (
                failure.times > 0
                and failure.method == request.method
                and failure.pattern.fullmatch(request.path)
            ):
                failure.times -= 1
                if failure.stall:
                    await asyncio.sleep(failure.delay)
                    break
                if failure.delay:
                    if failure.status < 300:
                        response: web.StreamResponse = await handler(request)
                        await asyncio.sleep(failure.delay)
                        record.status = response.status
                        return response
                    await asyncio.sleep(failure.delay)
                record.status = failure.status
                headers = {}
                if failure.status == 429:
                    headers = {"X-RateLimit-Limit": "10000", "X-RateLimit-Remaining": "0"}
                if failure.retry_after is not None:
                    headers["Retry-After"] = str(int(failure.retry_after))
                    if failure.status == 429:
                        headers["X-RateLimit-Reset"] = str(int(time.time() + failure.retry_after))
                return _error(
                    failure.status,
                    "rate_limit_exceeded" if failure.status == 429 else "server_error",
                    "scripted failure",
                    headers=headers,
                )
        response = await handler(request)
        assert isinstance(response, web.StreamResponse)
        self._check_response(request, body, response)
        response.headers["X-RateLimit-Limit"] = "10000"
        response.headers["X-RateLimit-Remaining"] = "9000"
        response.headers["X-RateLimit-Reset"] = str(int(time.time()) + 10)
        record.status = response.status
        return response

    def _check(self, request: web.Request, body: bytes) -> str | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return "missing or wrong bearer token"
        if request.headers.get("Intercom-Version") != self.api_version:
            return f"Intercom-Version is {request.headers.get('Intercom-Version')!r}, not {self.api_version!r}"
        try:
            intercom_openapi().validate_request(_SpecRequest(request, body))
        except RequestValidationError as exc:
            cause = exc.__cause__
            detail = f"{exc}" + (f" <- {cause}" if cause else "")
            schema_errors = getattr(cause, "schema_errors", None) or getattr(
                exc, "schema_errors", None
            )
            if schema_errors:
                detail += " :: " + "; ".join(str(e.message) for e in schema_errors)
            return f"violates the Intercom 2.14 spec: {detail}"[:2000]
        except Exception as exc:  # noqa: BLE001 — path not in the spec, unsupported method …
            return f"violates the Intercom 2.14 spec: {type(exc).__name__}: {exc}"[:2000]
        return None

    def _check_response(self, request: web.Request, body: bytes, response: web.StreamResponse) -> None:
        """The fake's own answers must match the spec too, or it could drift from Intercom."""
        if not isinstance(response, web.Response) or response.status >= 400 or response.body is None:
            return
        try:
            intercom_openapi().validate_response(
                _SpecRequest(request, body),
                _SpecResponse(response),
            )
        except ResponseValidationError as exc:
            errors = [
                e for e in getattr(exc.__cause__, "schema_errors", None) or ()
                # Known defect of the published description: ``assigned_to`` is a nullable
                # ``$ref`` (ignored by OpenAPI 3.0), yet its own examples, like Intercom, send null.
                if not (list(e.absolute_path)[-1:] == ["assigned_to"] and e.instance is None)
            ]
            if errors or not getattr(exc.__cause__, "schema_errors", None):
                detail = "; ".join(f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors) or str(exc)
                self.violations.append(f"fake answer to {request.method} {request.path}: {detail}")

    async def _me(self, request: web.Request) -> web.Response:
        admin = self.admins[self.bot_admin_id]
        return web.json_response(
            {
                "type": "admin",
                "id": self.bot_admin_id,
                "email": admin["email"],
                "name": admin["name"],
                "email_verified": True,
                "app": {
                    "type": "app",
                    "id_code": "abc123",
                    "name": "Acme",
                    "created_at": 1700000000,
                    "secure": False,
                    "identity_verification": False,
                    "timezone": "Europe/London",
                    "region": "US",
                },
                "avatar": {"type": "avatar", "image_url": None},
                "has_inbox_seat": True,
            }
        )

    def _conversation_or_404(self, request: web.Request) -> _Conversation | web.Response:
        conversation = self.conversations.get(request.match_info["id"])
        if conversation is None:
            return _error(404, "conversation_not_found", "Conversation not found")
        return conversation

    async def _find_conversation(self, request: web.Request) -> web.Response:
        found = self._conversation_or_404(request)
        if isinstance(found, web.Response):
            return found
        return web.json_response(self._public(found.id))

    async def _reply(self, request: web.Request) -> web.Response:
        found = self._conversation_or_404(request)
        if isinstance(found, web.Response):
            return found
        data = await request.json()
        if data.get("type") != "admin":
            return _error(400, "parameter_invalid", "only admin replies are faked")
        at = self.now()
        part = self._part(
            data["message_type"], data.get("body"), self._admin_author(data["admin_id"]), at
        )
        found.parts.append(part)
        found.updated_at = at
        if data["message_type"] == "comment":
            found.waiting_since = None
        return web.json_response(self._public(found.id))

    async def _manage(self, request: web.Request) -> web.Response:
        found = self._conversation_or_404(request)
        if isinstance(found, web.Response):
            return found
        data = await request.json()
        at = self.now()
        author = self._admin_author(data["admin_id"])
        kind = data["message_type"]
        if kind == "close":
            found.state = "closed"
            part = self._part("close", data.get("body"), author, at)
        elif kind == "open":
            found.state = "open"
            part = self._part("open", None, author, at)
        elif kind == "snoozed":
            found.state = "snoozed"
            found.snoozed_until = int(data["snoozed_until"])
            part = self._part("snoozed", None, author, at)
        else:
            part = self._part("assignment", data.get("body"), author, at)
            if data["type"] == "team":
                found.team_assignee_id = int(data["assignee_id"])
                part["assigned_to"] = {"type": "team", "id": data["assignee_id"]}
            else:
                found.admin_assignee_id = int(data["assignee_id"])
                part["assigned_to"] = {"type": "admin", "id": data["assignee_id"]}
        found.parts.append(part)
        found.updated_at = at
        return web.json_response(self._public(found.id))

    async def _tag(self, request: web.Request) -> web.Response:
        found = self._conversation_or_404(request)
        if isinstance(found, web.Response):
            return found
        data = await request.json()
        tag_id = str(data["id"])
        if tag_id not in self.tags:
            return _error(404, "tag_not_found", "Tag not found")
        if tag_id not in found.tag_ids:
            found.tag_ids.append(tag_id)
        return web.json_response({"type": "tag", "id": tag_id, "name": self.tags[tag_id]})

    async def _untag(self, request: web.Request) -> web.Response:
        found = self._conversation_or_404(request)
        if isinstance(found, web.Response):
            return found
        tag_id = request.match_info["tag_id"]
        if tag_id not in found.tag_ids:
            return _error(404, "tag_not_found", "Tag not found on conversation")
        found.tag_ids.remove(tag_id)
        return web.json_response({"type": "tag", "id": tag_id, "name": self.tags[tag_id]})

    async def _list_tags(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "type": "list",
                "data": [{"type": "tag", "id": i, "name": n} for i, n in self.tags.items()],
            }
        )

    async def _create_tag(self, request: web.Request) -> web.Response:
        data = await request.json()
        name = str(data["name"])
        for tag_id, existing in self.tags.items():
            if existing.lower() == name.lower():
                return web.json_response({"type": "tag", "id": tag_id, "name": existing})
        tag_id = self.new_id()
        self.tags[tag_id] = name
        return web.json_response({"type": "tag", "id": tag_id, "name": name})

    async def _list_articles(self, request: web.Request) -> web.Response:
        ids = sorted(self.articles, key=lambda i: -int(self.articles[i]["updated_at"]))
        items = [self.article_json(i) for i in ids]
        if self.list_articles_without_content:
            items = [{**item, "body": None, "translated_content": None} for item in items]
        return _paged(items, request)

    async def _list_help_centers(self, request: web.Request) -> web.Response:
        return web.json_response({"type": "list", "data": list(self.help_centers.values())})

    async def _list_collections(self, request: web.Request) -> web.Response:
        """Newest first, as Intercom lists them, page-numbered like ``GET /articles``."""
        items = sorted(self.collections.values(), key=lambda c: -int(c["updated_at"]))
        return _paged(items, request)

    async def _find_article(self, request: web.Request) -> web.Response:
        article_id = request.match_info["id"]
        if article_id not in self.articles:
            return _error(404, "not_found", "Resource Not Found")
        return web.json_response(self.article_json(article_id))

    async def _contact(self, request: web.Request) -> web.Response:
        contact_id = request.match_info["id"]
        contact = self.contacts.get(contact_id)
        if contact is None:
            return _error(404, "not_found", "User Not Found")
        return web.json_response(
            {
                "type": "contact",
                "id": contact_id,
                "workspace_id": "abc123",
                "external_id": None,
                "role": contact["role"],
                "email": contact["email"],
                "phone": None,
                "name": contact["name"],
                "custom_attributes": contact["custom_attributes"],
                "created_at": 1700000000,
                "updated_at": 1700000000,
                "last_seen_at": 1700000500,
                "location": {"type": "location", "country": "Ireland", "city": "Dublin"},
                "companies": {
                    "type": "list",
                    "data": [
                        {"type": "company", "id": c["id"], "url": f"/companies/{c['id']}"}
                        for c in self.companies.get(contact_id, [])
                    ],
                    "url": f"/contacts/{contact_id}/companies",
                    "total_count": len(self.companies.get(contact_id, [])),
                    "has_more": False,
                },
            }
        )

    async def _contact_companies(self, request: web.Request) -> web.Response:
        contact_id = request.match_info["id"]
        companies = self.companies.get(contact_id, [])
        return web.json_response(
            {
                "type": "list",
                "companies": companies,
                "pages": {
                    "type": "pages",
                    "next": None,
                    "page": 1,
                    "per_page": 50,
                    "total_pages": 1,
                },
                "total_count": len(companies),
            }
        )

    async def _search(self, request: web.Request) -> web.Response:
        data = await request.json()
        pagination = data.get("pagination") or {}
        per_page = int(pagination.get("per_page") or 20)
        start = _decode_cursor(pagination.get("starting_after"))
        matched = [
            c
            for c in sorted(self.conversations.values(), key=lambda c: int(c.id))
            if _matches(data["query"], self._public(c.id))
        ]
        page = matched[start : start + per_page]
        total_pages = max(1, -(-len(matched) // per_page))
        pages: JSON = {
            "type": "pages",
            "page": start // per_page + 1,
            "per_page": per_page,
            "total_pages": total_pages,
        }
        if start + per_page < len(matched):
            pages["next"] = {
                "per_page": per_page,
                "starting_after": _encode_cursor(start + per_page),
            }
        conversations = []
        for c in page:
            item = self._public(c.id)
            item.pop("conversation_parts", None)  # search results carry no parts
            conversations.append(item)
        return web.json_response(
            {
                "type": "conversation.list",
                "pages": pages,
                "total_count": len(matched),
                "conversations": conversations,
            }
        )


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)[1])


def _matches(query: JSON, conversation: JSON) -> bool:
    if "field" not in query:
        results = [_matches(q, conversation) for q in query["value"]]
        return all(results) if query["operator"] == "AND" else any(results)
    value: Any = conversation
    for key in query["field"].split("."):
        value = value.get(key) if isinstance(value, dict) else None
    wanted = query["value"]
    op = query["operator"]
    if op == "=":
        return bool(value == wanted or (value is not None and str(value) == str(wanted)))
    if op == "!=":
        return bool(value != wanted)
    if value is None:
        return False
    if op == ">":
        return bool(value > wanted)
    if op == "<":
        return bool(value < wanted)
    raise ValueError(f"operator {op} is not faked")


def _paged(items: list[JSON], request: web.Request) -> web.Response:
    """Intercom's page-numbered list (``page``, ``per_page``), as ``GET /articles`` and
    ``GET /help_center/collections`` page."""
    page = max(1, int(request.query.get("page", "1")))
    per_page = max(1, min(150, int(request.query.get("per_page", "50"))))
    total_pages = max(1, -(-len(items) // per_page))
    return web.json_response(
        {
            "type": "list",
            "pages": {"type": "pages", "page": page, "per_page": per_page,
                      "total_pages": total_pages},
            "total_count": len(items),
            "data": items[(page - 1) * per_page : page * per_page],
        }
    )


def _error(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {
            "type": "error.list",
            "request_id": uuid.uuid4().hex,
            "errors": [{"code": code, "message": message}],
        },
        status=status,
        headers=headers,
    )
