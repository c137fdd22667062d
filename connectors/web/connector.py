"""The web connector: serves the widget and the chat page, and turns a browser into a visitor
session (a smith token in an ``HttpOnly`` cookie) that the ``/v1`` conversations API accepts.

Messages go through the conversations API (``bot.http.conversations``), which submits them to
the inbox and streams the turn. The answer is streamed to the browser as the turn runs and lives
in the run, so ``execute`` has nothing left to send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from importlib import resources
from typing import Any

from aiohttp import web
from yarl import URL

from bot.config import normalise_origin
from bot.connector import Connector, ConnectorRuntime
from bot.domain import Action, NotFound, Thread
from bot.http.auth import SESSION_COOKIE, api_error, mint_smith_token
from bot.http.bodies import BodyRefused, json_object
from connectors.web.visitors import (
    IdentityRefused,
    Visitor,
    VisitorResolver,
    secret_is_short,
    verify_identity,
)

log = logging.getLogger(__name__)

ANON_COOKIE = "sb_anon"
ANON_COOKIE_DAYS = 365
STATIC_FILES = {
    "chat.css": "text/css",
    "chat.js": "text/javascript",
    "widget.js": "text/javascript",
}
# What a session request may carry unsigned: the signed identity, and a name for display.
SESSION_FIELDS = frozenset({"identity", "name"})
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> bytes:
    return resources.files("connectors.web").joinpath("static", name).read_bytes()


class WebConnector(Connector):
    """The built-in web chat channel (``web``)."""

    name = "web"

    def __init__(self, runtime: ConnectorRuntime):
        self._runtime = runtime
        self._settings = runtime.settings
        if runtime.visitors is None:
            raise RuntimeError("the web connector needs a runtime that lends visitor records")
        self._visitors = runtime.visitors
        self._resolver: VisitorResolver | None = None
        self._key: bytes | None = None
        self._assets: dict[str, bytes] = {}

    async def start(self) -> None:
        slug = self._settings.web.agent or self._settings.default_agent
        try:
            agent_settings = self._settings.agent(slug)
        except KeyError:
            raise RuntimeError(f"web.agent: no agent {slug!r} is configured") from None
        agent = await self._visitors.ensure_agent(agent_settings.slug, agent_settings.name)
        self._resolver = VisitorResolver(
            self._visitors, agent.id, claim_window_seconds=self._settings.web.claim_window_seconds
        )
        secret = self._settings.web.identity_secret
        if secret is not None and secret_is_short(secret.get_secret_value()):
            log.warning("web.identity_secret is shorter than 32 bytes; HS256 identities want "
                        "a longer one (e.g. `openssl rand -hex 32`)")
        self._key = await self._visitors.token_key()
        # Read once: the files are small and serving them must not touch the disk per request.
        names = ["chat.html", *STATIC_FILES]
        loaded = await asyncio.to_thread(lambda: {n: _asset(n) for n in names})
        self._assets = loaded

    def routes(self) -> Sequence[web.RouteDef]:
        return [
            web.get("/chat", self.chat_page),
            web.get("/widget.js", self.widget_js),
            web.get("/web/static/{name}", self.static),
            web.post("/web/session", self.session),
        ]

    async def execute(self, action: Action, thread: Thread) -> str | None:
        """Nothing to send: the visitor received the answer in the stream, and escalated or
        closed shows through the thread's state."""
        return None

    # -- pages ------------------------------------------------------------------------------

    async def chat_page(self, request: web.Request) -> web.Response:
        headers = {**PAGE_HEADERS,
                   "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                                              "frame-ancestors *"}
        return web.Response(body=self._assets["chat.html"], content_type="text/html",
                            charset="utf-8", headers=headers)

    async def widget_js(self, request: web.Request) -> web.Response:
        return web.Response(body=self._assets["widget.js"], content_type="text/javascript",
                            charset="utf-8",
                            headers={**PAGE_HEADERS, "Access-Control-Allow-Origin": "*"})

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(body=self._assets[name], content_type=STATIC_FILES[name],
                            charset="utf-8", headers=PAGE_HEADERS)

    # -- the visitor session ------------------------------------------------------------------

    async def session(self, request: web.Request) -> web.Response:
        """Decide who the visitor is and set the session cookie the API accepts.

        Login CSRF guard: only ``application/json`` (a cross-site form cannot send it without a
        CORS preflight we never grant), only from the bot's own origin or ``web.allowed_origins``.
        """
        assert self._resolver is not None and self._key is not None
        if request.content_type != "application/json":
            return _error(415, "send the session request as application/json",
                          "unsupported_media_type", "invalid_request_error")
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, request):
            log.info("web session refused: origin not allowed")
            return _error(403, "this origin may not start a session; list it in "
                               "web.allowed_origins", "origin_not_allowed", "permission_error")
        body = await _body(request, self._settings.http.max_body_bytes)
        unsigned = sorted(set(body) - SESSION_FIELDS)
        if unsigned:
            return _error(400, f"{unsigned[0]} is not accepted here: only identity and name are; "
                               "customer_id and email go inside the signed identity",
                          "unsigned_field", "invalid_request_error")
        identity = body.get("identity")
        anon_token = request.cookies.get(ANON_COOKIE)
        visitor: Visitor
        if identity:
            secret = self._settings.web.identity_secret
            if secret is None:
                return _refused("signed identities are not configured (web.identity_secret)")
            try:
                claims = verify_identity(secret.get_secret_value(), str(identity))
            except IdentityRefused as exc:
                log.info("web identity refused: %s", exc)
                return _refused(str(exc))
            visitor = await self._resolver.signed_in(
                claims, anon_token=anon_token, display_name=_text(body.get("name")),
            )
        else:
            visitor = await self._resolver.anonymous(anon_token)
        try:
            smith = await self._visitors.get_smith(visitor.smith.id)
        except NotFound:
            raise web.HTTPServiceUnavailable() from None
        hours = self._settings.web.session_hours
        token = mint_smith_token(self._key, smith.id, ttl_seconds=hours * 3600)
        response = web.json_response({
            "object": "web.session",
            "smith_id": smith.id,
            "signed_in": visitor.signed_in,
            "claimed": visitor.claimed,
            "display_name": smith.display_name,
            "expires_in": int(hours * 3600),
        })
        secure = _is_https(request)
        response.set_cookie(SESSION_COOKIE, token, max_age=int(hours * 3600), path="/",
                            httponly=True, samesite="Lax", secure=secure)
        if visitor.anon_token is not None and visitor.anon_token != anon_token:
            response.set_cookie(ANON_COOKIE, visitor.anon_token,
                                max_age=ANON_COOKIE_DAYS * 86400, path="/",
                                httponly=True, samesite="Lax", secure=secure)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _origin_allowed(self, origin: str, request: web.Request) -> bool:
        """The bot's own origin (as this request reached it, or ``http.public_url``) or one
        listed in ``web.allowed_origins``. ``null`` and anything unparsable are refused."""
        try:
            wanted = normalise_origin(origin)
        except ValueError:
            return False
        if wanted in self._settings.web.allowed_origins:
            return True
        own = [f"{'https' if _is_https(request) else 'http'}://{request.host}"]
        if self._settings.http.public_url:
            own.append(self._settings.http.public_url)
        for candidate in own:
            try:
                if normalise_origin(str(URL(candidate).origin())) == wanted:
                    return True
            except ValueError:
                continue  # a Host header that is no host: not our origin
        return False


async def _body(request: web.Request, limit: int) -> dict[str, Any]:
    """The JSON object posted (bounded in size and depth), {} without a body; 4xx otherwise."""
    try:
        return await json_object(request, limit) or {}
    except BodyRefused as refused:
        raise api_error(refused.status, refused.reason, code=refused.code) from None


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:200]
    return None


def _refused(reason: str) -> web.Response:
    return _error(401, reason, "identity_refused", "authentication_error")


def _error(status: int, message: str, code: str, kind: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "code": code}},
                             status=status)


def _is_https(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"
