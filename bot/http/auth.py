"""Who is calling the HTTP API, and what they may touch.

Three kinds of caller:

- the **admin token** (``admin.token``, ``Authorization: Bearer …``): every operator endpoint, and
  the conversations of any smith it names with ``X-Smith-Id``; unset → no admin at all;
- a **smith token** (``sbt.<payload>.<signature>``): exactly one smith's conversations, with the
  scopes minted into it (``conversations:read``, ``conversations:write``);
- a **visitor session**: the web widget's ``HttpOnly`` cookie carrying a smith token, set by the
  web connector once it has decided who the visitor is. The browser's script never sees it.

Smith tokens are signed with a random key kept in the database (``WebStore.token_key``), so a
restart or another replica accepts them. Failing checks never say whose resource exists:
someone else's conversation is simply not found.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from bot.config import Settings
from bot.http.sessions import CSRF_HEADER, SAFE_METHODS, csrf_matches, session_of

READ: Final = "conversations:read"
WRITE: Final = "conversations:write"
ALL_SCOPES: Final = (READ, WRITE)

SESSION_COOKIE: Final = "sb_session"
SMITH_HEADER: Final = "X-Smith-Id"
TOKEN_PREFIX: Final = "sbt"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: an admin (``smith_id`` from ``X-Smith-Id``, if named) or one smith."""

    admin: bool
    smith_id: str | None
    scopes: frozenset[str]
    via: str  # "admin", "token" or "session": for logs, never for decisions


_ERROR_KINDS: dict[int, tuple[type[web.HTTPException], str]] = {
    400: (web.HTTPBadRequest, "invalid_request_error"),
    401: (web.HTTPUnauthorized, "authentication_error"),
    403: (web.HTTPForbidden, "permission_error"),
    404: (web.HTTPNotFound, "not_found_error"),
    409: (web.HTTPConflict, "conflict_error"),
    411: (web.HTTPLengthRequired, "invalid_request_error"),
    415: (web.HTTPUnsupportedMediaType, "invalid_request_error"),
}


def api_error(status: int, message: str, *, code: str | None = None) -> web.HTTPException:
    """An error in OpenAI's shape: ``{"error": {"message", "type", "code"}}``."""
    if status == 413:
        body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
        return web.HTTPRequestEntityTooLarge(
            max_size=0, actual_size=0, text=json.dumps(body), content_type="application/json"
        )
    exc_class, kind = _ERROR_KINDS.get(status, (web.HTTPBadRequest, "invalid_request_error"))
    body = {"error": {"message": message, "type": kind, "code": code}}
    return exc_class(text=json.dumps(body), content_type="application/json")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_smith_token(
    key: bytes, smith_id: str, *, ttl_seconds: float, scopes: tuple[str, ...] = ALL_SCOPES
) -> str:
    """A bearer token for one smith: ``sbt.<base64url JSON>.<base64url HMAC-SHA256>``."""
    payload = _b64(
        json.dumps(
            {"smith_id": smith_id, "scopes": list(scopes), "exp": int(time.time() + ttl_seconds)},
            separators=(",", ":"),
        ).encode()
    )
    signature = _b64(hmac.new(key, f"{TOKEN_PREFIX}.{payload}".encode(), hashlib.sha256).digest())
    return f"{TOKEN_PREFIX}.{payload}.{signature}"


def verify_smith_token(key: bytes, token: str) -> tuple[str, frozenset[str]] | None:
    """The smith id and scopes of a valid, unexpired token; None otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    expected = hmac.new(key, f"{TOKEN_PREFIX}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(parts[2])):
            return None
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, json.JSONDecodeError):
        return None
    if not isinstance(claims, dict) or float(claims.get("exp", 0)) < time.time():
        return None
    smith_id = claims.get("smith_id")
    scopes = claims.get("scopes")
    if not isinstance(smith_id, str) or not isinstance(scopes, list):
        return None
    return smith_id, frozenset(str(s) for s in scopes)


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def is_admin_token(settings: Settings, token: str | None) -> bool:
    admin = settings.admin.token
    if admin is None or token is None:
        return False
    return hmac.compare_digest(admin.get_secret_value().encode(), token.encode())


def authenticate(request: web.Request, settings: Settings, key: bytes) -> Principal:
    """The caller of an API request, or 401."""
    token = bearer(request)
    if token is not None:
        if is_admin_token(settings, token):
            named = request.headers.get(SMITH_HEADER)
            return Principal(True, named or None, frozenset(ALL_SCOPES), "admin")
        verified = verify_smith_token(key, token)
        if verified is not None:
            return Principal(False, verified[0], verified[1], "token")
        raise api_error(401, "invalid or expired token", code="invalid_token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        verified = verify_smith_token(key, cookie)
        if verified is not None:
            return Principal(False, verified[0], verified[1], "session")
    raise api_error(401, "authentication required", code="unauthenticated")


def require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise api_error(403, f"this token lacks the {scope} scope", code="insufficient_scope")


def require_admin(request: web.Request, settings: Settings) -> None:
    """Operator endpoints: 404 while no admin token is configured, 401 for a wrong one.

    The operator console's session cookie stands in for the token (``bot.http.sessions``), and
    then a request that changes anything must carry the session's CSRF token too (403)."""
    if settings.admin.token is None:
        raise api_error(404, "the operator API is disabled (no admin.token)", code="disabled")
    token = bearer(request)
    if is_admin_token(settings, token):
        return
    session = session_of(request, settings) if token is None else None
    if session is None:
        raise api_error(401, "the admin token is required", code="unauthenticated")
    if request.method not in SAFE_METHODS and not csrf_matches(
        session, request.headers.get(CSRF_HEADER)
    ):
        raise api_error(403, f"a console request that changes something needs the "
                             f"{CSRF_HEADER} header", code="csrf_failed")
