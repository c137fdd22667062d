"""Visitor sessions: the anonymous cookie, signed identities (forged or expired → 401), and
claim on login keeping the same smith and thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import jwt
import pytest
from yarl import URL

from connectors.web import IdentityClaims, sign_identity, verify_identity
from connectors.web.visitors import IdentityRefused
from tests.http.harness import SECRET, ask, json_call, running, session


def first_form(user_id: str, expires: int, secret: str = SECRET) -> str:
    """The identity as hosts signed it before claims: ``<user_id>.<expires>.<hex HMAC>``."""
    signature = hmac.new(secret.encode(), f"{user_id}.{expires}".encode(),
                         hashlib.sha256).hexdigest()
    return f"{user_id}.{expires}.{signature}"


def test_identity_round_trip_and_refusals() -> None:
    token = sign_identity(SECRET, "user.with.dots", ttl_seconds=60, customer_id="cus_1",
                          email="ada@example.com")
    claims = verify_identity(SECRET, token)
    assert (claims.user_id, claims.customer_id, claims.email) == (
        "user.with.dots", "cus_1", "ada@example.com")
    assert claims.issued_at is not None and claims.expires_at == claims.issued_at + 60
    with pytest.raises(IdentityRefused, match="signature"):
        verify_identity("another secret", token)
    header, _payload, signature = token.split(".")
    forged = jwt.utils.base64url_encode(json.dumps(
        {**jwt.decode(token, options={"verify_signature": False}), "customer_id": "cus_victim"}
    ).encode()).decode()
    with pytest.raises(IdentityRefused, match="signature"):
        verify_identity(SECRET, f"{header}.{forged}.{signature}")
    with pytest.raises(IdentityRefused, match="expired"):
        verify_identity(SECRET, sign_identity(SECRET, "u1", ttl_seconds=-1))
    with pytest.raises(IdentityRefused, match="future"):
        verify_identity(SECRET, sign_identity(SECRET, "u1", now=time.time() + 600))
    unsigned = jwt.encode({"sub": "u1", "iat": int(time.time()), "exp": int(time.time()) + 60},
                          None, algorithm="none")
    with pytest.raises(IdentityRefused, match="HS256"):
        verify_identity(SECRET, unsigned)
    no_expiry = jwt.encode({"sub": "u1", "iat": int(time.time())}, SECRET, algorithm="HS256")
    with pytest.raises(IdentityRefused, match="'exp'"):
        verify_identity(SECRET, no_expiry)
    numeric_customer = jwt.encode({"sub": "u1", "iat": int(time.time()),
                                   "exp": int(time.time()) + 60, "customer_id": 7},
                                  SECRET, algorithm="HS256")
    with pytest.raises(IdentityRefused, match="customer_id"):
        verify_identity(SECRET, numeric_customer)
    for junk in ("", "nodots", "a.b.c", "a..c", "u1.123.nothex"):
        with pytest.raises(IdentityRefused):
            verify_identity(SECRET, junk)


def test_the_first_form_still_proves_the_user_id_alone() -> None:
    expires = int(time.time()) + 60
    claims = verify_identity(SECRET, first_form("user.with.dots", expires))
    assert claims == IdentityClaims("user.with.dots", expires_at=expires)
    assert not claims.fresh(3600)  # no iat: it can never claim anonymous history
    signature = first_form("u1", expires).rsplit(".", 1)[1]
    with pytest.raises(IdentityRefused, match="signature"):
        verify_identity(SECRET, f"admin.{expires}.{signature}")
    with pytest.raises(IdentityRefused, match="signature"):
        verify_identity(SECRET, f"u1.{expires + 999}.{signature}")
    with pytest.raises(IdentityRefused, match="expired"):
        verify_identity(SECRET, first_form("u1", int(time.time()) - 1))


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
        me = await session(browser, identity=sign_identity(SECRET, "user_123",
                                                           customer_id="cus_1"), name="Ada")
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

        signed = await session(browser, identity=sign_identity(SECRET, "user_42",
                                                               customer_id="cus_9"),
                               name="Ada Lovelace")
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


async def test_the_session_takes_json_only(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        identity = sign_identity(SECRET, "mallory42")
        # What a cross-site form can send: text/plain and urlencoded bodies, no preflight.
        for body, content_type in ((json.dumps({"identity": identity}), "text/plain"),
                                   (f"identity={identity}", "application/x-www-form-urlencoded")):
            async with browser.post("/web/session", data=body,
                                    headers={"Content-Type": content_type}) as response:
                assert response.status == 415
                assert (await response.json())["error"]["code"] == "unsupported_media_type"
                assert "sb_session" not in response.cookies
        assert not await daemon.app.store.list_smiths(external_id_prefix="web:")


async def test_the_session_checks_the_origin(db_url: str) -> None:
    async with running(db_url, web={"identity_secret": SECRET,
                                    "allowed_origins": ["https://www.example.com"]}) as daemon:
        identity = sign_identity(SECRET, "mallory42")
        for origin in ("https://evil.example", "null", "https://www.example.com.evil.example",
                       daemon.url.replace("127.0.0.1", "localhost")):
            async with daemon.client() as browser, browser.post(
                "/web/session", json={"identity": identity}, headers={"Origin": origin}
            ) as response:
                assert response.status == 403, origin
                assert (await response.json())["error"]["code"] == "origin_not_allowed"
                assert "sb_session" not in response.cookies
        assert not await daemon.app.store.list_smiths(external_id_prefix="web:")
        # The bot's own origin (what /chat sends, also inside the widget's iframe), a listed
        # one, and a client that sends none (a backend: no browser, no cookies to abuse).
        for headers in ({"Origin": daemon.url}, {"Origin": "https://WWW.example.com:443"}, {}):
            async with daemon.client() as browser, browser.post(
                "/web/session", json={"identity": identity}, headers=headers
            ) as response:
                assert response.status == 200, headers


async def test_the_public_url_is_the_bots_own_origin(db_url: str) -> None:
    async with running(db_url, http={"host": "127.0.0.1", "port": 0,
                                     "public_url": "https://support.example.com/bot"}) as daemon, \
            daemon.client() as browser, browser.post(
                "/web/session", json={}, headers={"Origin": "https://support.example.com"}
            ) as response:
        assert response.status == 200


async def test_unsigned_customer_fields_are_refused_by_name(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        identity = sign_identity(SECRET, "mallory42", customer_id="cus_mallory")
        for field in ("customer_id", "email", "user_id"):
            async with browser.post("/web/session", json={"identity": identity, field: "victim"}
                                    ) as response:
                assert response.status == 400
                error = (await response.json())["error"]
                assert error["code"] == "unsigned_field" and error["message"].startswith(field)
        assert not await daemon.app.store.list_smiths(external_id_prefix="web:")


async def test_customer_fields_follow_the_signed_identity_only(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        me = await session(browser, identity=sign_identity(
            SECRET, "u5", customer_id="cus_5", email="u5@example.com", name="Signed Name"))
        smith = await daemon.app.store.get_smith(me["smith_id"])
        assert (smith.customer_id, smith.metadata["email"], smith.display_name) == (
            "cus_5", "u5@example.com", "Signed Name")
        # A value stored before (by an older release that took it unsigned) does not outlive
        # an identity that proves none: the first form carries the user id alone.
        await daemon.app.store.patch_smith(smith.id, customer_id="cus_victim")
        again = await session(browser, identity=first_form("u5", int(time.time()) + 60),
                              name="Display Only")
        smith = await daemon.app.store.get_smith(again["smith_id"])
        assert again["smith_id"] == me["smith_id"]
        assert (smith.customer_id, smith.metadata.get("email"), smith.display_name) == (
            None, None, "Display Only")


async def test_expired_identity_is_refused_with_the_reason(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        for identity in (sign_identity(SECRET, "u1", ttl_seconds=-60),
                         first_form("u1", int(time.time()) - 60)):
            async with browser.post("/web/session", json={"identity": identity}) as response:
                assert response.status == 401
                assert (await response.json())["error"]["message"] == "identity has expired"


async def test_the_first_form_signs_in_but_never_claims(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as browser:
        anon = await session(browser)
        me = await session(browser, identity=first_form("legacy_1", int(time.time()) + 60))
        assert me["signed_in"] is True and me["claimed"] is False
        assert me["smith_id"] != anon["smith_id"]
        smith = await daemon.app.store.get_smith(me["smith_id"])
        assert smith.external_id == "web:legacy_1"


async def test_only_a_fresh_identity_claims_anonymous_history(db_url: str) -> None:
    async with running(db_url, web={"identity_secret": SECRET, "claim_window_seconds": 60}
                       ) as daemon, daemon.client() as browser:
        anon = await session(browser)
        stale = sign_identity(SECRET, "user_late", now=time.time() - 120, ttl_seconds=3600)
        late = await session(browser, identity=stale)
        assert late["claimed"] is False and late["smith_id"] != anon["smith_id"]
        # Still the visitor's own: a fresh identity claims it.
        fresh = await session(browser, identity=sign_identity(SECRET, "user_now"))
        assert fresh["claimed"] is True and fresh["smith_id"] == anon["smith_id"]
