"""``DELETE /v1/smiths/{id}``: soft-archive by default, ``?erase=true`` removes the smith's data
for good and answers with the audit record; over real HTTP on both databases."""

from __future__ import annotations

import aiohttp
from openapi_spec_validator import validate

from bot.store.erasure import Erasures
from tests.http.harness import ask, json_call, running, session
from tests.store.test_erasure import dump

PNG = b"\x89PNG\r\n\x1a\n" + b"zed-private-screenshot" * 4


async def test_delete_archives_and_erase_removes_for_good(db_url: str) -> None:
    async with running(db_url) as daemon, daemon.client() as visitor:
        me = await session(visitor, name="Zed Example")
        form = aiohttp.FormData()
        form.add_field("file", PNG, filename="zed-invoice.png", content_type="image/png")
        uploaded = await json_call(visitor, "POST", "/v1/files", data=form)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
        await ask(visitor, conversation["id"], "zed forgot the password of zed@example.org",
                  attachments=[uploaded["id"]])
        smith = await daemon.app.store.get_smith(me["smith_id"])
        assert smith.external_id
        needles = [smith.external_id, "zed forgot the password", "zed@example.org",
                   "zed-invoice.png", "zed-private-screenshot"]
        before = await dump(daemon.app.store)
        assert [n for n in needles if n in before] == needles

        async with daemon.admin() as admin:
            path = f"/v1/smiths/{me['smith_id']}"
            await json_call(admin, "DELETE", f"{path}?erase=maybe", expect=400)
            # Without erase=true: archived only; the history stays for the audit log.
            gone = await json_call(admin, "DELETE", path)
            assert gone == {"id": me["smith_id"], "object": "smith.deleted", "deleted": True}
            archived = await dump(daemon.app.store)
            assert [n for n in needles if n in archived] == needles
            runs = await json_call(admin, "GET", f"/v1/runs?smith_id={me['smith_id']}")
            assert len(runs["data"]) == 1

            # An archived smith can still be erased; then nothing of it is left.
            erased = await json_call(admin, "DELETE", f"{path}?erase=true")
            assert erased["object"] == "smith.erased" and erased["deleted"] is True
            record = erased["erasure"]
            assert record["smith_id"] == me["smith_id"] and record["requested_by"] == "api"
            assert record["counts"]["threads"] == 1 and record["counts"]["files"] == 1
            assert record["counts"]["runs"] == 1 and record["counts"]["smiths"] == 1
            assert not any(n in str(record) for n in needles)
            after = await dump(daemon.app.store)
            assert [n for n in needles if n in after] == []

            await json_call(admin, "DELETE", f"{path}?erase=true", expect=404)
            await json_call(admin, "DELETE", path, expect=404)
            await json_call(admin, "GET", path, expect=404)
            assert (await json_call(admin, "GET", f"/v1/runs?smith_id={me['smith_id']}"))["data"] == []
            await json_call(admin, "GET", f"/v1/files/{uploaded['id']}/content", expect=404)
        (stored,) = await Erasures(daemon.app.db).list_erasures(smith_id=me["smith_id"])
        assert stored.id == record["id"]

        # Only operators erase.
        async with daemon.client() as nobody:
            await json_call(nobody, "DELETE", f"/v1/smiths/{me['smith_id']}?erase=true",
                            expect=401)


async def test_erase_is_in_the_openapi_document(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as anyone:
        document = await json_call(anyone, "GET", "/v1/openapi.json")
    validate(document)
    params = document["paths"]["/v1/smiths/{id}"]["delete"]["parameters"]
    erase = next(p for p in params if p["name"] == "erase")
    assert erase["in"] == "query" and erase["schema"]["type"] == "boolean"
    assert "Erasure" in document["components"]["schemas"]
