"""The console's routes: the page shell (or, without a session, only the sign-in form), signing
in and out, and the static files.

Signing in is a form POST of the admin token; the answer sets the session cookie and sends the
browser on (303). A sign-in from another origin is refused (login CSRF), and so is a sign-out
without the session's CSRF token. The shell carries the CSRF token in a ``<meta>`` tag for the
scripts, which send it as ``X-CSRF-Token``; the Content-Security-Policy allows only the console's
own scripts and styles.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from bot.config import Settings
from bot.http.auth import is_admin_token
from bot.http.sessions import (
    CSRF_FIELD,
    clear_session_cookie,
    csrf_matches,
    is_https,
    new_session,
    session_of,
    set_session_cookie,
)

log = logging.getLogger(__name__)

STATIC_FILES: Final = {"console.css": "text/css", "console.js": "text/javascript"}
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
HOME: Final = "/console"
FORM_MAX: Final = 8192


def _asset(name: str) -> str:
    return resources.files("bot.console").joinpath("static", name).read_text(encoding="utf-8")


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a console page of this site, never elsewhere."""
    if not value or not value.startswith(HOME) or value.startswith("//"):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return HOME
    return value


class ConsolePages:
    def __init__(self, settings: Settings, *, sign_out: Callable[[str, float], Awaitable[None]]):
        """``sign_out(session id, when its cookie expires)`` ends a session on every replica."""
        self._settings = settings
        self._sign_out = sign_out
        self._assets: dict[str, str] = {}

    async def load(self) -> None:
        """Read the files once: serving them must not touch the disk per request."""
        names = ["app.html", "signin.html", *STATIC_FILES]
        self._assets = await asyncio.to_thread(lambda: {n: _asset(n) for n in names})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(HOME, self.page),
            web.get("/console/static/{name}", self.static),
            web.post("/console/sign-in", self.sign_in),
            web.post("/console/sign-out", self.sign_out),
            web.get("/console/{tail:.*}", self.page),
        ]

    def _html(self, body: str, status: int = 200) -> web.Response:
        return web.Response(text=body, status=status, content_type="text/html",
                            charset="utf-8", headers=HEADERS)

    def _sign_in_page(self, request: web.Request, *, error: str = "", status: int = 200,
                      next_page: str | None = None) -> web.Response:
        if self._settings.admin.token is None:
            error = "The console is off: set admin.token (SUPPORTBOT_ADMIN__TOKEN) to use it."
        page = self._assets["signin.html"]
        page = page.replace(
            "{{next}}", html.escape(_safe_next(next_page or request.path_qs), quote=True))
        page = page.replace("{{error}}", f'<p class="error" role="alert">{html.escape(error)}</p>'
                            if error else "")
        return self._html(page, status)

    async def page(self, request: web.Request) -> web.Response:
        session = session_of(request, self._settings)
        if session is None:
            return self._sign_in_page(request)
        return self._html(self._assets["app.html"].replace("{{csrf}}", session.csrf))

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(text=self._assets[name], content_type=STATIC_FILES[name],
                            charset="utf-8", headers=HEADERS)

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser's cross-site form (browsers send Origin on POST)
        own = {f"{request.scheme}://{request.host}"}
        if self._settings.http.public_url:
            public = urlsplit(self._settings.http.public_url)
            own.add(f"{public.scheme}://{public.netloc}")
        return origin in own

    async def _form(self, request: web.Request) -> dict[str, str]:
        if request.content_type != "application/x-www-form-urlencoded":
            raise web.HTTPUnsupportedMediaType(text="send the form as a form")
        if request.content_length is not None and request.content_length > FORM_MAX:
            raise web.HTTPRequestEntityTooLarge(max_size=FORM_MAX,
                                                actual_size=request.content_length)
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    async def sign_in(self, request: web.Request) -> web.Response:
        if not self._same_origin(request):
            log.info("console sign-in refused: another origin")
            return self._sign_in_page(request, error="Sign in from the console's own page.",
                                      status=403)
        form = await self._form(request)
        if self._settings.admin.token is None:
            return self._sign_in_page(request, status=404)
        if not is_admin_token(self._settings, form.get("token", "").strip() or None):
            log.info("console sign-in refused: wrong token")
            return self._sign_in_page(request, error="That is not the admin token.",
                                      status=401, next_page=form.get("next"))
        _, cookie = new_session(self._settings)
        response = _see_other(_safe_next(form.get("next")))
        set_session_cookie(response, cookie, secure=is_https(request, self._settings))
        return response

    async def sign_out(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        session = session_of(request, self._settings)
        if session is not None and not csrf_matches(session, form.get(CSRF_FIELD)):
            return self._html("<!doctype html><title>Refused</title>"
                              "<p>Sign-out refused: the form's CSRF token is missing or wrong.",
                              status=403)
        if session is not None:
            # The cookie may have been copied: the session ends here, not only in this browser.
            await self._sign_out(session.sid, session.expires_at)
        response = _see_other(HOME)
        clear_session_cookie(response, secure=is_https(request, self._settings))
        return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={**HEADERS, "Location": location})
