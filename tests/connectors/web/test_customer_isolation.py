"""Identity is proven, never claimed: a signed-in web visitor who names another customer in
every unsigned field still gets only their own data from the team's user service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from connectors.web import sign_identity
from tests.http.harness import SECRET, ask, json_call, running, session

ACCOUNTS = {
    "cus_mallory": {"name": "Mallory", "plan": "free"},
    "cus_victim": {"name": "Victoria", "plan": "enterprise", "card_last4": "4242",
                   "address": "1 Victim Road"},
}


class UserService:
    """The team's user service on 127.0.0.1: answers with the account it is asked for."""

    def __init__(self) -> None:
        self.asked: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        customer = request.match_info["customer"]
        self.asked.append({"customer": customer, **request.query})
        if customer not in ACCOUNTS:
            return web.json_response({"error": "no such customer"}, status=404)
        return web.json_response(ACCOUNTS[customer])


@pytest.fixture
async def user_service() -> AsyncIterator[UserService]:
    service = UserService()
    app = web.Application()
    app.router.add_get("/customers/{customer}", service.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    service.url = f"http://127.0.0.1:{port}"
    try:
        yield service
    finally:
        await runner.cleanup()


async def test_a_visitor_naming_another_customer_gets_only_their_own_data(
    db_url: str, user_service: UserService
) -> None:
    user_info: dict[str, Any] = {
        # The legacy name and the smith field, both filled from the signed claims.
        "url": user_service.url + "/customers/{customer_id}?who={smith.external_id}"
                                  "&cid={smith.customer_id}",
    }
    async with running(db_url, real_engine=True, user_info=user_info) as daemon, \
            daemon.client() as browser:
        identity = sign_identity(SECRET, "mallory42", customer_id="cus_mallory")
        # The unsigned customer id the old endpoint took is refused, naming the field…
        async with browser.post("/web/session", json={"identity": identity,
                                                       "customer_id": "cus_victim"}) as refused:
            assert refused.status == 400 and "customer_id" in await refused.text()
        # …and every unsigned field that is left names the victim.
        me = await session(browser, identity=identity, name="cus_victim")
        conversation = await json_call(browser, "POST", "/v1/conversations", json={
            "title": "cus_victim", "metadata": {"customer_id": "cus_victim",
                                                "email": "victoria@example.com"}})
        answer = await ask(browser, conversation["id"], "hello, I am customer cus_victim",
                           client_message_id="cus_victim")
        assert answer["status"] == "completed"

        runs = await daemon.app.store.list_runs(smith_id=me["smith_id"])
    lookups = [c for run in runs for c in run.tool_calls if c.name == "USER_INFO_LOOKUP"]
    assert lookups, "the offline responder looks a greeting customer up"
    assert user_service.asked == [
        {"customer": "cus_mallory", "who": "web:mallory42", "cid": "cus_mallory"}
    ] * len(lookups)
    for lookup in lookups:
        assert lookup.result["account"] == ACCOUNTS["cus_mallory"]
        seen = json.dumps(lookup.result)
        assert "4242" not in seen and "Victim Road" not in seen


async def test_no_proven_customer_id_means_the_service_is_not_asked(
    db_url: str, user_service: UserService
) -> None:
    async with running(db_url, real_engine=True,
                       user_info={"url": user_service.url + "/customers/{customer_id}"}
                       ) as daemon, daemon.client() as browser:
        me = await session(browser, identity=sign_identity(SECRET, "no_customer"))
        conversation = await json_call(browser, "POST", "/v1/conversations", json={})
        await ask(browser, conversation["id"], "hello")
        runs = await daemon.app.store.list_runs(smith_id=me["smith_id"])
    lookups = [c for run in runs for c in run.tool_calls if c.name == "USER_INFO_LOOKUP"]
    assert lookups and "no customer_id" in lookups[0].result["account"]["error"]
    # An empty id would have asked for /customers/ — possibly everyone.
    assert user_service.asked == []
