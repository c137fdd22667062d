"""The operator console's session: a signed cookie, and the CSRF token that goes with it.

Signing in with the admin token sets ``sb_console`` (``HttpOnly``, ``SameSite=Strict``,
``Secure`` over HTTPS): ``<base64url JSON {sid, exp}>.<base64url HMAC-SHA256>``, signed with a
key derived from the admin token, so no table is needed, every replica accepts it, and changing
the admin token ends every session. The CSRF token is a second HMAC over the session id: the
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
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from bot.config import Settings

CONSOLE_COOKIE: Final = "sb_console"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
SESSION_SECONDS: Final = 12 * 3600
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_KEY_LABEL: Final = b"supportbot console session v1"


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
    """The request's valid, unexpired console session, or None."""
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
