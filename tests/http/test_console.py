"""The operator console over real HTTP: sign-in with the admin token, the session cookie's
flags, CSRF on everything that writes (403 without it), sign-out, the API accepting the
session; the customer's feedback on an answer; the console's operator endpoints."""

from __future__ import annotations

import re

import aiohttp
from yarl import URL

from tests.http.harness import ADMIN, ask, json_call, running, session


async def sign_in(client: aiohttp.ClientSession, token: str = ADMIN) -> aiohttp.ClientResponse:
    response = await client.post("/console/sign-in", data={"token": token, "next": "/console"},
                                 allow_redirects=False)
    await response.read()
    return response


async def csrf_of(client: aiohttp.ClientSession) -> str:
    async with client.get("/console") as response:
        page = await response.text()
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert found, "no CSRF token on the console page"
    return found.group(1)


async def test_without_a_session_every_console_page_is_only_the_sign_in(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as nobody:
        for path in ("/console", "/console/analytics", "/console/threads/thr_x",
                     "/console/agents"):
            async with nobody.get(path) as response:
                page = await response.text()
            assert response.status == 200
            assert 'name="token"' in page and "Sign in" in page
            assert "csrf-token" not in page and "console.js" not in page
            assert response.headers["Cache-Control"] == "no-store"
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        await json_call(nobody, "GET", "/v1/inbox", expect=401)


async def test_sign_in_sets_a_strict_http_only_session_and_sign_out_ends_it(
    sqlite_url: str
) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as browser:
        wrong = await sign_in(browser, "not-the-token")
        assert wrong.status == 401 and "sb_console" not in wrong.cookies
        response = await sign_in(browser)
        assert response.status == 303 and response.headers["Location"] == "/console"
        cookie = response.cookies["sb_console"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert not cookie["secure"]  # plain HTTP here; Secure behind https public_url
        csrf = await csrf_of(browser)

        # The API takes the session: reads freely, writes only with the CSRF token.
        await json_call(browser, "GET", "/v1/inbox")
        refused = await json_call(browser, "POST", "/v1/agents/support/versions",
                                  json={"note": "x"}, expect=403)
        assert refused["error"]["code"] == "csrf_failed"
        await json_call(browser, "POST", "/v1/agents/support/versions", json={"note": "x"},
                        headers={"X-CSRF-Token": "forged"}, expect=403)
        published = await json_call(browser, "POST", "/v1/agents/support/versions",
                                    json={"note": "first"}, headers={"X-CSRF-Token": csrf},
                                    expect=201)
        assert published["version"] == 1

        # Signing out needs the form's CSRF token too.
        async with browser.post("/console/sign-out", data={},
                                allow_redirects=False) as response:
            assert response.status == 403
        async with browser.post("/console/sign-out", data={"csrf_token": csrf},
                                allow_redirects=False) as response:
            assert response.status == 303
        await json_call(browser, "GET", "/v1/inbox", expect=401)
        async with browser.get("/console") as response:
            assert 'name="token"' in await response.text()


async def test_a_copied_cookie_is_refused_by_every_replica_after_sign_out(db_url: str) -> None:
    """Two replicas on one database: the session is ended on one, and a copy of its cookie
    taken before is refused by both (401 on the API, the sign-in form on the pages)."""
    async with running(db_url) as first, running(db_url) as second:
        async with first.client() as browser:
            cookie = (await sign_in(browser)).cookies["sb_console"].value
            csrf = await csrf_of(browser)
            async with second.client(Cookie=f"sb_console={cookie}") as thief:
                await json_call(thief, "GET", "/v1/inbox")  # the copy works while signed in
            async with browser.post("/console/sign-out", data={"csrf_token": csrf},
                                    allow_redirects=False) as response:
                assert response.status == 303
            fresh = (await sign_in(browser)).cookies["sb_console"].value
        for replica in (first, second):
            async with replica.client(Cookie=f"sb_console={cookie}") as thief:
                await json_call(thief, "GET", "/v1/inbox", expect=401)
                async with thief.get("/console/threads/thr_x") as response:
                    page = await response.text()
                assert 'name="token"' in page and "csrf-token" not in page
            # Another session of the same admin is not touched.
            async with replica.client(Cookie=f"sb_console={fresh}") as other:
                await json_call(other, "GET", "/v1/inbox")


async def test_sign_in_from_another_origin_is_refused(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as browser, browser.post(
        "/console/sign-in", data={"token": ADMIN}, headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    ) as response:
        assert response.status == 403
        assert "sb_console" not in response.cookies


async def test_a_session_cookie_signed_with_another_admin_token_is_refused(
    sqlite_url: str
) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as browser:
        await sign_in(browser)
        cookie = browser.cookie_jar.filter_cookies(URL(daemon.url))["sb_console"].value
    async with running(sqlite_url, admin={"token": "another-admin-token"}) as other, \
            other.client() as browser:
        browser.cookie_jar.update_cookies({"sb_console": cookie})
        await json_call(browser, "GET", "/v1/inbox", expect=401)


async def test_feedback_on_an_answer_is_stored_with_the_run(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon:
        async with daemon.client() as visitor, daemon.client() as stranger:
            await session(visitor)
            await session(stranger)
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            answer = await ask(visitor, conversation["id"], "reset my password")
            path = f"/v1/conversations/{conversation['id']}/feedback"
            given = await json_call(visitor, "POST", path, expect=201, json={
                "run_id": answer["run_id"], "rating": "down", "comment": "too vague"})
            assert given["rating"] == "down" and given["comment"] == "too vague"
            # Rating again replaces the verdict.
            await json_call(visitor, "POST", path, expect=201,
                            json={"run_id": answer["run_id"], "rating": "up"})
            await json_call(visitor, "POST", path, expect=400,
                            json={"run_id": answer["run_id"], "rating": "meh"})
            await json_call(visitor, "POST", path, expect=404,
                            json={"run_id": "run_missing", "rating": "up"})
            # Another visitor cannot rate (or even see) this conversation's answer.
            await json_call(stranger, "POST", path, expect=404,
                            json={"run_id": answer["run_id"], "rating": "down"})
            theirs = await json_call(stranger, "POST", "/v1/conversations", json={})
            await json_call(stranger, "POST", f"/v1/conversations/{theirs['id']}/feedback",
                            expect=404, json={"run_id": answer["run_id"], "rating": "down"})
        async with daemon.admin() as admin:
            run = await json_call(admin, "GET", f"/v1/runs/{answer['run_id']}")
            transcript = await json_call(admin, "GET",
                                         f"/v1/threads/{run['thread_id']}/transcript")
        rated = transcript["runs"][0]["feedback"]
        assert [(f["rating"], f["comment"]) for f in rated] == [("up", None)]
        assert transcript["runs"][0]["tool_calls"][0]["name"] == "USER_INFO_LOOKUP"
        assert transcript["runs"][0]["rag_results"][0]["score"] == 0.91


async def test_inbox_lists_an_escalation_and_analytics_counts_it(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon:
        async with daemon.client() as visitor:
            await session(visitor)
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            await ask(visitor, conversation["id"], "I want a human")
        async with daemon.admin() as admin:
            inbox = (await json_call(admin, "GET", "/v1/inbox"))["data"]
            assert len(inbox) == 1 and inbox[0]["state"] == "escalated"
            assert inbox[0]["priority"] == "normal" and inbox[0]["last_message"] == "I want a human"
            report = await json_call(admin, "GET", "/v1/analytics")
            assert report["conversations"] == 1 and report["escalation_rate"] == 1.0
            assert report["escalations_by_reason"] == {"unspecified": 1}
            for bad in ("since=yesterday", "since=10&until=5", "since=0&until=99999999",
                        "until=1e300"):
                await json_call(admin, "GET", f"/v1/analytics?{bad}", expect=400)
            agents = (await json_call(admin, "GET", "/v1/agents"))["data"]
            assert agents[0]["slug"] == "support" and agents[0]["versions"] == []
            await json_call(admin, "POST", "/v1/agents/support/live", json={"version": 3},
                            expect=404)
            await json_call(admin, "POST", "/v1/agents/nobody/versions", json={}, expect=404)
