"""The operator console's session: a signed cookie, and the CSRF token that goes with it.

Signing in with the admin token sets ``sb_console`` (``HttpOnly``, ``SameSite=Strict``,
``Secure`` over HTTPS): ``<base64url JSON {sid, exp}>.<base64url HMAC-SHA256>``, signed with a
key derived from the admin token, so every replica accepts it, and changing the admin token
ends every session. Signing out ends that session on the server too: its id goes into the
store's ``console_signouts`` (kept until the cookie would have expired), and every request with
a session cookie is checked against it once, by ``session_middleware``, so a copy of the cookie
taken before sign-out is refused by every replica. The CSRF token is a second HMAC over the session id: the
console's pages carry it, and every state-changing request must send it back (form field
``csrf_token`` or header ``X-CSRF-Token``); another site can make the browser send the cookie
but cannot read the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.config import Settings

CONSOLE_COOKIE: Final = "sb_console"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
SESSION_SECONDS: Final = 12 * 3600
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_KEY_LABEL: Final = b"supportbot console session v1"
# The request being answered and its console session as ``session_middleware`` found it (None:
# none, or signed out). A context variable rather than request storage: the handler runs in the
# middleware's context, and aiohttp's typed request keys are newer than the versions we support.
_SESSION: ContextVar[tuple[web.BaseRequest, ConsoleSession | None] | None] = ContextVar(
    "console_session", default=None
)


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    sid: str
    expires_at: float
    csrf: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(settings: Settings) -> bytes | None:
    token = settings.admin.token
    if token is None:
        return None
    return hmac.new(token.get_secret_value().encode(), _KEY_LABEL, hashlib.sha256).digest()


def _csrf(key: bytes, sid: str) -> str:
    return _b64(hmac.new(key, f"csrf.{sid}".encode(), hashlib.sha256).digest())


def new_session(settings: Settings) -> tuple[ConsoleSession, str]:
    """A fresh session and its cookie value (the admin token must be configured)."""
    key = _key(settings)
    if key is None:
        raise RuntimeError("no admin.token: the console is disabled")
    sid = secrets.token_urlsafe(18)
    expires = int(time.time() + SESSION_SECONDS)
    payload = _b64(json.dumps({"sid": sid, "exp": expires}, separators=(",", ":")).encode())
    signature = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return ConsoleSession(sid, expires, _csrf(key, sid)), f"{payload}.{signature}"


def session_of(request: web.Request, settings: Settings) -> ConsoleSession | None:
    """The request's valid, unexpired console session that was not signed out, or None —
    also None when ``session_middleware`` did not look at the request (fail closed)."""
    found = _SESSION.get()
    return found[1] if found is not None and found[0] is request else None


def session_middleware(
    settings: Settings, signed_out: Callable[[str], Awaitable[bool]]
) -> Middleware:
    """Finds each request's console session: a signed, unexpired cookie whose id
    ``signed_out`` does not know (one store read, only for a request that has such a cookie)."""

    @web.middleware
    async def find_session(request: web.Request, handler: Handler) -> web.StreamResponse:
        session = signed_session(request, settings)
        if session is not None and await signed_out(session.sid):
            session = None
        token = _SESSION.set((request, session))
        try:
            return await handler(request)
        finally:
            _SESSION.reset(token)

    return find_session


def signed_session(request: web.Request, settings: Settings) -> ConsoleSession | None:
    """The session the request's cookie carries if its signature holds and it has not expired;
    whether it was signed out is ``session_middleware``'s to tell."""
    if "Cookie" not in request.headers:  # webhooks, API clients: no cookie to parse or key
        return None
    key = _key(settings)
    cookie = request.cookies.get(CONSOLE_COOKIE)
    if key is None or not cookie or cookie.count(".") != 1:
        return None
    payload, signature = cookie.split(".")
    expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        claims = json.loads(_unb64(payload))
    except (ValueError, json.JSONDecodeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("sid"), str):
        return None
    expires = claims.get("exp")
    if not isinstance(expires, int) or expires < time.time():
        return None
    return ConsoleSession(claims["sid"], expires, _csrf(key, claims["sid"]))


def csrf_matches(session: ConsoleSession, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(session.csrf.encode(), sent.encode())


def is_https(request: web.Request, settings: Settings) -> bool:
    """Whether the browser reached us over HTTPS (directly, or as ``http.public_url`` says)."""
    public = settings.http.public_url or ""
    return request.secure or public.startswith("https://")


def set_session_cookie(response: web.StreamResponse, value: str, *, secure: bool) -> None:
    response.set_cookie(CONSOLE_COOKIE, value, max_age=SESSION_SECONDS, path="/",
                        httponly=True, samesite="Strict", secure=secure)


def clear_session_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    response.del_cookie(CONSOLE_COOKIE, path="/", secure=secure, httponly=True,
                        samesite="Strict")
