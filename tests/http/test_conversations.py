"""The conversations API over real HTTP: CRUD, list and items envelopes, auto-title, the
message endpoint (JSON and SSE), and scoping between smiths."""

from __future__ import annotations

from typing import Any

from tests.http.harness import (
    ANSWER_PARTS,
    ask,
    json_call,
    read_sse,
    running,
    session,
)


async def test_conversation_crud_and_list_envelope(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as visitor:
        me = await session(visitor)
        created = []
        for n in range(3):
            created.append(await json_call(visitor, "POST", "/v1/conversations",
                                           json={"title": f"Topic {n}", "metadata": {"n": str(n)}}))
        first = created[0]
        assert first["object"] == "conversation"
        assert first["smith_id"] == me["smith_id"]
        assert first["title"] == "Topic 0" and first["metadata"] == {"n": "0"}
        assert isinstance(first["created_at"], int) and isinstance(first["updated_at"], int)

        page = await json_call(visitor, "GET", "/v1/conversations?limit=2")
        assert page["object"] == "list"
        assert [c["id"] for c in page["data"]] == [created[2]["id"], created[1]["id"]]
        assert page["has_more"] is True and page["next_cursor"] == created[1]["id"]
        rest = await json_call(visitor, "GET", f"/v1/conversations?limit=2&after={page['next_cursor']}")
        assert [c["id"] for c in rest["data"]] == [first["id"]]
        assert rest["has_more"] is False and rest["next_cursor"] is None

        renamed = await json_call(visitor, "POST", f"/v1/conversations/{first['id']}",
                                  json={"title": "Renamed", "metadata": {"n": None, "k": "v"}})
        assert renamed["title"] == "Renamed" and renamed["metadata"] == {"k": "v"}
        assert (await json_call(visitor, "GET", f"/v1/conversations/{first['id']}"))["title"] == "Renamed"

        # An empty body mints an untitled conversation.
        untitled = await json_call(visitor, "POST", "/v1/conversations")
        assert untitled["title"] is None and untitled["metadata"] == {}

        deleted = await json_call(visitor, "DELETE", f"/v1/conversations/{first['id']}")
        assert deleted == {"id": first["id"], "object": "conversation.deleted", "deleted": True}
        await json_call(visitor, "GET", f"/v1/conversations/{first['id']}", expect=404)
        listed = await json_call(visitor, "GET", "/v1/conversations")
        assert first["id"] not in [c["id"] for c in listed["data"]]


async def test_message_auto_titles_and_items_are_reconstructed_from_runs(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as visitor:
        await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        answer = await ask(visitor, conversation["id"], "How do I reset my password?")
        assert answer["status"] == "completed"
        assert answer["output_text"] == "".join(ANSWER_PARTS)
        assert answer["citations"][0]["title"].startswith("Resetting your password")
        assert answer["conversation"]["state"] == "open"
        await ask(visitor, conversation["id"], "Thanks, and my invoices?")

        fresh = await json_call(visitor, "GET", f"/v1/conversations/{conversation['id']}")
        assert fresh["title"] == "How do I reset my password?"

        items = await json_call(visitor, "GET", f"/v1/conversations/{conversation['id']}/items")
        assert items["object"] == "list" and items["has_more"] is False
        roles = [(i["role"], i["content"][0]["type"]) for i in items["data"]]
        assert roles == [("user", "input_text"), ("assistant", "output_text")] * 2
        assert items["data"][0]["content"][0]["text"] == "How do I reset my password?"
        assert items["first_id"] == items["data"][0]["id"]
        assert items["last_id"] == items["data"][-1]["id"]
        assert items["data"][1]["content"][0]["annotations"][0]["type"] == "url_citation"

        newest = await json_call(visitor, "GET",
                                 f"/v1/conversations/{conversation['id']}/items?order=desc&limit=1")
        assert newest["data"][0]["id"] == items["data"][-1]["id"]
        assert newest["has_more"] is True
        after = await json_call(
            visitor, "GET",
            f"/v1/conversations/{conversation['id']}/items?order=desc&limit=2&after={newest['last_id']}",
        )
        assert [i["id"] for i in after["data"]] == [items["data"][2]["id"], items["data"][1]["id"]]
        # Item ids are stable across reads.
        again = await json_call(visitor, "GET", f"/v1/conversations/{conversation['id']}/items")
        assert [i["id"] for i in again["data"]] == [i["id"] for i in items["data"]]


async def test_sse_event_order(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as visitor:
        await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        async with visitor.post(f"/v1/conversations/{conversation['id']}/messages",
                                json={"content": "reset password"},
                                headers={"Accept": "text/event-stream"}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            frames = await read_sse(response)
        names = [name for name, _ in frames]
        assert names == ["run.started", "tool.executing", "tool.completed",
                         "message.delta", "message.delta", "message.delta", "run.completed"]
        run_ids = {data["run_id"] for _, data in frames}
        assert len(run_ids) == 1 and None not in run_ids
        assert all(data["v"] == 1 for _, data in frames)
        assert "".join(d["delta"] for n, d in frames if n == "message.delta") == "".join(ANSWER_PARTS)
        final = frames[-1][1]
        assert final["stop_reason"] == "end_turn" and final["citations"]


async def test_stream_false_and_accept_json_give_one_answer(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as visitor:
        await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        path = f"/v1/conversations/{conversation['id']}/messages"
        by_query = await json_call(visitor, "POST", path + "?stream=false", json={"content": "a"})
        by_accept = await json_call(visitor, "POST", path, json={"content": "b"},
                                    headers={"Accept": "application/json"})
        for answer in (by_query, by_accept):
            assert answer["status"] == "completed" and answer["run_id"].startswith("run_")
        await json_call(visitor, "POST", path, expect=400, json={"content": "  ", "stream": False})


async def test_a_retried_message_is_one_turn(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as visitor:
        await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        first = await ask(visitor, conversation["id"], "hello", client_message_id="m-1")
        second = await ask(visitor, conversation["id"], "hello", client_message_id="m-1")
        assert first["run_id"] == second["run_id"]
        assert daemon.engine is not None and len(daemon.engine.turns) == 1


async def test_a_visitor_never_sees_another_visitors_conversation(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as alice, daemon.client() as bob:
        alice_me = await session(alice)
        bob_me = await session(bob)
        assert alice_me["smith_id"] != bob_me["smith_id"]
        theirs = await json_call(alice, "POST", "/v1/conversations", json={"title": "private"})
        await ask(alice, theirs["id"], "my secret question")
        cid = theirs["id"]
        for method, path, body in (
            ("GET", f"/v1/conversations/{cid}", None),
            ("GET", f"/v1/conversations/{cid}/items", None),
            ("POST", f"/v1/conversations/{cid}", {"title": "mine now"}),
            ("DELETE", f"/v1/conversations/{cid}", None),
            ("POST", f"/v1/conversations/{cid}/messages", {"content": "hi", "stream": False}),
        ):
            error = await json_call(bob, method, path, expect=404, json=body)
            assert error["error"]["type"] == "not_found_error"
            assert "secret" not in str(error)
        assert (await json_call(bob, "GET", "/v1/conversations"))["data"] == []
        # Nothing changed for Alice.
        mine = await json_call(alice, "GET", f"/v1/conversations/{cid}")
        assert mine["title"] == "private"


async def test_smith_tokens_and_admin_acting_for_a_smith(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as visitor:
        me = await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={"title": "t"})
        async with daemon.admin() as admin:
            token = (await json_call(admin, "POST", f"/v1/smiths/{me['smith_id']}/tokens",
                                     json={"scopes": ["conversations:read"]}))["token"]
            other = await json_call(admin, "GET", "/v1/smiths?external_id_prefix=anon:")
            assert [s["id"] for s in other["data"]] == [me["smith_id"]]
            # The admin must name the smith it acts for.
            await json_call(admin, "GET", "/v1/conversations", expect=400)
        async with daemon.admin(me["smith_id"]) as acting:
            listed = await json_call(acting, "GET", "/v1/conversations")
            assert [c["id"] for c in listed["data"]] == [conversation["id"]]
        async with daemon.admin("smt_nobody") as acting:
            await json_call(acting, "GET", "/v1/conversations", expect=404)

        async with daemon.client(Authorization=f"Bearer {token}") as backend:
            got = await json_call(backend, "GET", f"/v1/conversations/{conversation['id']}")
            assert got["id"] == conversation["id"]
            # Minted read-only: writing is refused.
            await json_call(backend, "POST", "/v1/conversations", expect=403, json={})
        async with daemon.client(Authorization="Bearer sbt.forged.token") as forged:
            await json_call(forged, "GET", "/v1/conversations", expect=401)
        async with daemon.client() as stranger:
            await json_call(stranger, "GET", "/v1/conversations", expect=401)


async def test_messages_while_a_human_holds_the_thread_are_kept(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as visitor:
        await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        escalated = await ask(visitor, conversation["id"], "I want a human please")
        assert escalated["conversation"]["state"] == "escalated"
        assert escalated["stop_reason"] == "escalated"
        later: dict[str, Any] = await ask(visitor, conversation["id"], "are you there?")
        assert later["status"] == "skipped"
        items = await json_call(visitor, "GET", f"/v1/conversations/{conversation['id']}/items")
        texts = [i["content"][0]["text"] for i in items["data"]]
        assert texts[-1] == "are you there?"
        state = await json_call(visitor, "GET", f"/v1/conversations/{conversation['id']}")
        assert state["state"] == "escalated" and state["control"] == "human"


async def test_a_follow_up_cites_the_article_its_answer_comes_from(sqlite_url: str) -> None:
    """The offline responder reads a follow-up with the conversation and answers from that
    search, which the turn's retrieval of the latest message alone may not hold: the citation is
    the article the answer quotes (it was the latest message's best hit, cancelling, under the
    2FA steps)."""
    async with running(sqlite_url, real_engine=True) as daemon, daemon.client() as visitor:
        await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        await ask(visitor, conversation["id"], "my phone broke and now i cant get the login codes")
        answer = await ask(
            visitor, conversation["id"], "i dont want to keep paying for this, how do i stop it"
        )
        cited = [c["source"] for c in answer["citations"]]
        assert len(cited) == 1, answer["citations"]
        assert f"({cited[0]})" in answer["output_text"], (cited, answer["output_text"])
