"""The console session cookie on its own: signed, expiring, bound to the admin token, and its
CSRF token bound to the session."""

from __future__ import annotations

import time

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bot.config import Settings
from bot.http import sessions
from bot.http.sessions import CONSOLE_COOKIE, csrf_matches, new_session, session_of, signed_session


def _request(cookie: str) -> web.Request:
    return make_mocked_request("GET", "/console", headers={"Cookie": f"{CONSOLE_COOKIE}={cookie}"})


def test_a_session_round_trips_and_its_csrf_token_matches_only_itself() -> None:
    settings = Settings(admin={"token": "admin-token"})
    made, cookie = new_session(settings)
    found = signed_session(_request(cookie), settings)
    assert found is not None and found.sid == made.sid
    assert csrf_matches(found, made.csrf)
    other, _ = new_session(settings)
    assert not csrf_matches(found, other.csrf) and not csrf_matches(found, None)


def test_tampered_foreign_or_expired_cookies_are_no_session(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(admin={"token": "admin-token"})
    _, cookie = new_session(settings)
    payload, signature = cookie.split(".")
    for bad in (f"{payload}x.{signature}", f"{payload}.{signature[:-2]}", "garbage", ""):
        assert signed_session(_request(bad), settings) is None
    rotated = Settings(admin={"token": "another-token"})
    assert signed_session(_request(cookie), rotated) is None
    assert signed_session(_request(cookie), Settings()) is None
    later = time.time() + sessions.SESSION_SECONDS + 1
    monkeypatch.setattr(sessions.time, "time", lambda: later)
    assert signed_session(_request(cookie), settings) is None


def test_a_request_the_middleware_did_not_check_has_no_session() -> None:
    """Whether a session was signed out is known only to ``session_middleware``: without its
    verdict even a well-signed cookie is no session (fail closed)."""
    settings = Settings(admin={"token": "admin-token"})
    _, cookie = new_session(settings)
    assert signed_session(_request(cookie), settings) is not None
    assert session_of(_request(cookie), settings) is None
