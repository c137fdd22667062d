"""Visitor sessions: the anonymous cookie, signed identities (forged or expired → 401), and
claim on login keeping the same smith and thread."""

from __future__ import annotations

import time

import pytest
from yarl import URL

from connectors.web import sign_identity, verify_identity
from connectors.web.visitors import IdentityRefused
from tests.http.harness import SECRET, ask, json_call, running, session


def test_identity_round_trip_and_refusals() -> None:
    token = sign_identity(SECRET, "user.with.dots", ttl_seconds=60)
    assert verify_identity(SECRET, token) == "user.with.dots"
    with pytest.raises(IdentityRefused, match="signature"):
        verify_identity("another secret", token)
    user, expires, signature = token.rsplit(".", 2)
    with pytest.raises(IdentityRefused, match="signature"):
        verify_identity(SECRET, f"admin.{expires}.{signature}")
    with pytest.raises(IdentityRefused, match="signature"):
        verify_identity(SECRET, f"{user}.{int(expires) + 999}.{signature}")
    old = sign_identity(SECRET, "u1", ttl_seconds=-1)
    with pytest.raises(IdentityRefused, match="expired"):
        verify_identity(SECRET, old)
    for junk in ("", "nodots", "a.b.c", "a..c"):
        with pytest.raises(IdentityRefused):
            verify_identity(SECRET, junk)


async def test_anonymous_cookie_keeps_the_same_smith(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        first = await session(browser)
        again = await session(browser)
        assert first["smith_id"] == again["smith_id"] and first["signed_in"] is False
        smith = await daemon.app.store.get_smith(first["smith_id"])
        assert smith.external_id is not None and smith.external_id.startswith("anon:")
        assert smith.auto_memory is False
        async with daemon.client() as other_browser:
            assert (await session(other_browser))["smith_id"] != first["smith_id"]


async def test_cookies_are_httponly_lax_and_secure_over_https(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        async with browser.post("/web/session", json={}) as plain:
            cookies = plain.headers.getall("Set-Cookie")
        assert {c.split("=", 1)[0] for c in cookies} == {"sb_session", "sb_anon"}
        for cookie in cookies:
            lowered = cookie.lower()
            assert "httponly" in lowered and "samesite=lax" in lowered and "secure" not in lowered
        async with daemon.client() as proxied, proxied.post(
            "/web/session", json={}, headers={"X-Forwarded-Proto": "https"}
        ) as https:
            assert all("secure" in c.lower() for c in https.headers.getall("Set-Cookie"))


async def test_forged_or_expired_identity_is_refused(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        forged = sign_identity("not the secret", "u1")
        expired = sign_identity(SECRET, "u1", ttl_seconds=-10)
        for identity in (forged, expired, "u1.9999999999.deadbeef"):
            async with browser.post("/web/session", json={"identity": identity}) as response:
                assert response.status == 401
                body = await response.json()
                assert body["error"]["type"] == "authentication_error"
                assert "sb_session" not in response.cookies
        assert not await daemon.app.store.list_smiths(external_id_prefix="web:")


async def test_identities_are_refused_while_no_secret_is_configured(db_url: str) -> None:
    async with running(db_url, web={"identity_secret": None}) as daemon, \
            daemon.client() as browser, browser.post(
                "/web/session", json={"identity": sign_identity(SECRET, "u1")}) as response:
        assert response.status == 401


async def test_signed_in_visitor_gets_a_web_smith(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        me = await session(browser, identity=sign_identity(SECRET, "user_123"), name="Ada",
                           customer_id="cus_1")
        assert me["signed_in"] is True and me["claimed"] is False
        smith = await daemon.app.store.get_smith(me["smith_id"])
        assert (smith.external_id, smith.display_name, smith.customer_id, smith.auto_memory) == (
            "web:user_123", "Ada", "cus_1", True)
        async with daemon.client() as laptop:
            again = await session(laptop, identity=sign_identity(SECRET, "user_123"))
            assert again["smith_id"] == me["smith_id"]


async def test_claim_on_login_keeps_the_smith_and_the_thread(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        anon = await session(browser)
        conversation = await json_call(browser, "POST", "/v1/conversations", json={})
        await ask(browser, conversation["id"], "reset my password")
        anon_cookie = browser.cookie_jar.filter_cookies(URL(daemon.url))["sb_anon"].value

        signed = await session(browser, identity=sign_identity(SECRET, "user_42"),
                               name="Ada Lovelace", customer_id="cus_9")
        assert signed["claimed"] is True and signed["smith_id"] == anon["smith_id"]
        smith = await daemon.app.store.get_smith(anon["smith_id"])
        assert smith.external_id == f"anon:{anon_cookie}"  # external ids are immutable
        assert (smith.display_name, smith.customer_id, smith.auto_memory) == (
            "Ada Lovelace", "cus_9", True)

        # The same thread continues under the claimed smith.
        answer = await ask(browser, conversation["id"], "and my invoices?")
        assert answer["status"] == "completed"
        runs = await daemon.app.store.list_runs(smith_id=smith.id)
        assert len(runs) == 2 and len({r.thread_id for r in runs}) == 1

        # The anonymous cookie was replaced: logging out does not lead back to this history.
        assert browser.cookie_jar.filter_cookies(URL(daemon.url))["sb_anon"].value != anon_cookie
        browser.cookie_jar.clear(lambda cookie: cookie.key == "sb_session")
        logged_out = await session(browser)
        assert logged_out["smith_id"] != smith.id

        # A later login anywhere resolves to the claimed smith.
        async with daemon.client() as phone:
            later = await session(phone, identity=sign_identity(SECRET, "user_42"))
            assert later["smith_id"] == smith.id and later["claimed"] is False
            listed = await json_call(phone, "GET", "/v1/conversations")
            assert [c["id"] for c in listed["data"]] == [conversation["id"]]
        assert not await daemon.app.store.list_smiths(external_id_prefix="web:")


async def test_a_stolen_anonymous_cookie_cannot_reach_a_claimed_smith(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        anon = await session(browser)
        cookie = browser.cookie_jar.filter_cookies(URL(daemon.url))["sb_anon"].value
        await session(browser, identity=sign_identity(SECRET, "user_7"))
        async with daemon.client() as thief:
            thief.cookie_jar.update_cookies({"sb_anon": cookie})
            assert (await session(thief))["smith_id"] != anon["smith_id"]


def test_signing_uses_the_documented_message() -> None:
    import hashlib
    import hmac

    expires = int(time.time()) + 60
    expected = hmac.new(SECRET.encode(), f"u1.{expires}".encode(), hashlib.sha256).hexdigest()
    assert verify_identity(SECRET, f"u1.{expires}.{expected}") == "u1"


async def test_after_archiving_a_claimed_smith_the_user_can_claim_again(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        first = await session(browser)
        await session(browser, identity=sign_identity(SECRET, "user_9"))
        await daemon.app.store.archive_smith(first["smith_id"])
        browser.cookie_jar.clear(lambda cookie: cookie.key == "sb_session")
        second = await session(browser)  # a new anonymous smith
        assert second["smith_id"] != first["smith_id"]
        claimed = await session(browser, identity=sign_identity(SECRET, "user_9"))
        assert claimed["claimed"] is True and claimed["smith_id"] == second["smith_id"]
