"""Operator endpoints over real HTTP: the admin token, segments by external_id_prefix, runs with
tool calls and passages, threads by state, smith patch/archive, attachments, OpenAPI."""

from __future__ import annotations

import io
import re

import aiohttp
import pytest
from openapi_spec_validator import validate

from bot.domain import ThreadState
from tests.http.harness import ADMIN, ask, json_call, running, session

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_operator_api_needs_the_admin_token(db_url: str) -> None:
    async with running(db_url) as daemon:
        async with daemon.client() as nobody:
            await json_call(nobody, "GET", "/v1/smiths", expect=401)
        async with daemon.client(Authorization="Bearer wrong") as wrong:
            await json_call(wrong, "GET", "/v1/runs", expect=401)
        async with daemon.client() as visitor:
            await session(visitor)  # a visitor session is no operator
            await json_call(visitor, "GET", "/v1/threads", expect=401)


async def test_operator_api_is_off_without_an_admin_token(db_url: str) -> None:
    async with running(db_url, admin={"token": None}) as daemon, \
            daemon.client(Authorization=f"Bearer {ADMIN}") as caller:
        body = await json_call(caller, "GET", "/v1/smiths", expect=404)
        assert body["error"]["code"] == "disabled"


async def test_segments_by_external_id_prefix(db_url: str) -> None:
    async with running(db_url) as daemon:
        store = daemon.app.store
        agent = await store.get_agent("support")
        known = await store.ensure_smith("intercom:c1", agent.id)
        async with daemon.client() as visitor:
            me = await session(visitor)
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            answer = await ask(visitor, conversation["id"], "reset my password")
        async with daemon.admin() as admin:
            anon = await json_call(admin, "GET", "/v1/smiths?external_id_prefix=anon:")
            assert [s["id"] for s in anon["data"]] == [me["smith_id"]]
            assert anon["data"][0]["auto_memory"] is False
            intercom = await json_call(admin, "GET", "/v1/smiths?external_id_prefix=intercom:")
            assert [s["id"] for s in intercom["data"]] == [known.id]
            everyone = await json_call(admin, "GET", "/v1/smiths?limit=1")
            assert len(everyone["data"]) == 1 and everyone["has_more"] is True

            runs = await json_call(admin, "GET", "/v1/runs?external_id_prefix=anon:")
            assert [r["id"] for r in runs["data"]] == [answer["run_id"]]
            assert (await json_call(admin, "GET", "/v1/runs?external_id_prefix=intercom:"))["data"] == []

            run = await json_call(admin, "GET", f"/v1/runs/{answer['run_id']}")
            assert run["tool_calls"][0]["name"] == "USER_INFO_LOOKUP"
            assert run["rag_results"][0]["source"] == "account/resetting-your-password.md"
            assert run["input"][0]["content"] == "reset my password"
            await json_call(admin, "GET", "/v1/runs/run_missing", expect=404)


async def test_threads_by_state_and_smith_patch_and_archive(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as visitor:
        me = await session(visitor)
        calm = await json_call(visitor, "POST", "/v1/conversations", json={})
        await ask(visitor, calm["id"], "reset my password")
        loud = await json_call(visitor, "POST", "/v1/conversations", json={})
        await ask(visitor, loud["id"], "get me a human")
        async with daemon.admin() as admin:
            escalated = await json_call(admin, "GET", "/v1/threads?state=escalated")
            assert [t["external_id"] for t in escalated["data"]] == [f"web:{loud['id']}"]
            assert escalated["data"][0]["control"] == "human"
            await json_call(admin, "GET", "/v1/threads?state=bogus", expect=400)
            open_ = await json_call(admin, "GET", f"/v1/threads?state={ThreadState.OPEN.value}")
            assert [t["external_id"] for t in open_["data"]] == [f"web:{calm['id']}"]

            patched = await json_call(admin, "PATCH", f"/v1/smiths/{me['smith_id']}",
                                      json={"display_name": "Ada", "metadata": {"plan": "pro"}})
            assert patched["display_name"] == "Ada" and patched["metadata"]["plan"] == "pro"
            await json_call(admin, "PATCH", f"/v1/smiths/{me['smith_id']}", expect=400,
                            json={"external_id": "anon:other"})
            gone = await json_call(admin, "DELETE", f"/v1/smiths/{me['smith_id']}")
            assert gone == {"id": me["smith_id"], "object": "smith.deleted", "deleted": True}
            await json_call(admin, "GET", f"/v1/smiths/{me['smith_id']}", expect=404)
            # The runs stay for the audit log.
            assert len((await json_call(admin, "GET", f"/v1/runs?smith_id={me['smith_id']}"))["data"]) == 2
        # The archived smith's session reaches nothing; the same browser starts afresh.
        await json_call(visitor, "GET", f"/v1/conversations/{calm['id']}", expect=404)
        again = await session(visitor)
        assert again["smith_id"] != me["smith_id"]
        assert (await json_call(visitor, "GET", "/v1/conversations"))["data"] == []


async def test_attachments_are_stored_and_only_operators_download_them(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as visitor:
        await session(visitor)
        form = aiohttp.FormData()
        form.add_field("file", PNG, filename="screen.png", content_type="image/png")
        uploaded = await json_call(visitor, "POST", "/v1/files", data=form)
        assert uploaded["object"] == "file" and uploaded["bytes"] == len(PNG)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        await ask(visitor, conversation["id"], "this error keeps popping up",
                  attachments=[uploaded["id"]])
        assert daemon.engine is not None
        sent = daemon.engine.turns[-1].messages[0].attachments[0]
        assert (sent.file_id, sent.name, sent.content_type) == (uploaded["id"], "screen.png", "image/png")
        items = await json_call(visitor, "GET", f"/v1/conversations/{conversation['id']}/items")
        assert items["data"][0]["content"][1] == {
            "type": "input_image", "file_id": uploaded["id"], "filename": "screen.png"}

        await json_call(visitor, "GET", f"/v1/files/{uploaded['id']}/content", expect=401)
        async with daemon.admin() as admin, admin.get(f"/v1/files/{uploaded['id']}/content") as got:
            assert got.status == 200
            assert got.headers["Content-Type"] == "image/png"
            assert await got.read() == PNG
            await json_call(admin, "GET", "/v1/files/file_missing/content", expect=404)


async def test_uploads_have_a_size_cap_and_a_type_allowlist(db_url: str) -> None:
    async with running(db_url, web={"identity_secret": "s", "max_upload_bytes": 2048}) as daemon, \
            daemon.client() as visitor:
        await session(visitor)
        big = aiohttp.FormData()
        big.add_field("file", b"%PDF-" + b"x" * 4096, filename="big.pdf",
                      content_type="application/pdf")
        error = await json_call(visitor, "POST", "/v1/files", expect=413, data=big)
        assert error["error"]["code"] == "file_too_large"
        exe = aiohttp.FormData()
        exe.add_field("file", b"MZ\x90\x00", filename="x.exe",
                      content_type="application/octet-stream")
        await json_call(visitor, "POST", "/v1/files", expect=415, data=exe)
        fake = aiohttp.FormData()
        fake.add_field("file", b"MZ\x90\x00", filename="cat.png", content_type="image/png")
        await json_call(visitor, "POST", "/v1/files", expect=415, data=fake)
        # Another visitor's file cannot be attached.
        ok = aiohttp.FormData()
        ok.add_field("file", b"hello", filename="notes.txt", content_type="text/plain")
        mine = await json_call(visitor, "POST", "/v1/files", data=ok)
        async with daemon.client() as other:
            await session(other)
            conversation = await json_call(other, "POST", "/v1/conversations", json={})
            await json_call(other, "POST", f"/v1/conversations/{conversation['id']}/messages",
                            expect=400, json={"content": "x", "attachments": [mine["id"]],
                                              "stream": False})


@pytest.mark.parametrize("path", ["/v1/openapi.json"])
async def test_openapi_document(sqlite_url: str, path: str) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as anyone:
        document = await json_call(anyone, "GET", path)
    validate(document)
    routes = {
        ("/v1/conversations", "post"), ("/v1/conversations", "get"),
        ("/v1/conversations/{id}", "delete"), ("/v1/conversations/{id}/items", "get"),
        ("/v1/conversations/{id}/messages", "post"), ("/v1/files/{id}/content", "get"),
        ("/v1/smiths", "get"), ("/v1/smiths/{id}", "patch"), ("/v1/runs/{id}", "get"),
        ("/v1/threads", "get"), ("/web/session", "post"),
    }
    assert routes <= {(p, m) for p, ops in document["paths"].items() for m in ops}


async def test_an_upload_above_the_request_body_limit_but_under_the_cap_is_stored(
    sqlite_url: str,
) -> None:
    data = b"%PDF-" + b"0" * 2_000_000  # bigger than http.max_body_bytes (1 MiB)
    async with running(sqlite_url) as daemon, daemon.client() as visitor:
        await session(visitor)
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(data), filename='in"voice ü.pdf',
                       content_type="application/pdf")
        uploaded = await json_call(visitor, "POST", "/v1/files", data=form)
        assert uploaded["bytes"] == len(data)
        async with daemon.admin() as admin, admin.get(f"/v1/files/{uploaded['id']}/content") as got:
            assert await got.read() == data
            disposition = got.headers["Content-Disposition"]
            assert re.fullmatch(r'attachment; filename="[A-Za-z0-9._ -]+\.pdf"', disposition)
