"""Bodies from the network: bounded JSON (``bot.http.bodies``), and the API's refusals of
malformed input as 4xx with a reason, never a 500; an unexpected error is a JSON 500, logged,
with no traceback for the client."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import aiohttp
import pytest
from aiohttp import web

from bot.http.bodies import MAX_JSON_DEPTH, BodyRefused, parse_json
from bot.http.server import errors_as_json
from tests.http.harness import json_call, running, session


@pytest.mark.parametrize("raw, code", [
    (b"[" * 100_000 + b"]" * 100_000, "json_too_deep"),
    (b"[" * 100_000, "json_too_deep"),
    (b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1), "json_too_deep"),
    (b'{"a": NaN}', "invalid_json"),
    (b'{"a": -Infinity}', "invalid_json"),
    (b'{"a": 1e400}', "invalid_json"),
    (b'{"a": ' + b"9" * 5_000 + b"}", "invalid_json"),
    (b'{"a": "\\u0000"}', "invalid_json"),
    (b'{"\\ud800": 1}', "invalid_json"),
    (b'{"a": "\xff"}', "invalid_json"),
    (b"{", "invalid_json"),
])
def test_what_parse_json_refuses(raw: bytes, code: str) -> None:
    with pytest.raises(BodyRefused) as refused:
        parse_json(raw)
    assert refused.value.status == 400 and refused.value.code == code
    assert len(refused.value.reason) < 300  # a reason, not an echo of the body


def test_what_parse_json_keeps() -> None:
    nested = b'{"a":' * (MAX_JSON_DEPTH - 1) + b"[1]" + b"}" * (MAX_JSON_DEPTH - 1)
    assert parse_json(nested)
    assert parse_json('{"t": "caf\u00e9 \\ud83d\\ude00", "n": 1.5}'.encode()) == {
        "t": "caf\u00e9 \U0001f600", "n": 1.5}
    assert parse_json(b'"\\\\u0000 is six characters"') == "\\u0000 is six characters"


async def test_api_refusals_are_4xx_with_a_reason(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as visitor:
        me = await session(visitor)
        deep = b'{"title": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        cases = [
            ("POST", "/v1/conversations", deep, "application/json", 400, "json_too_deep"),
            ("POST", "/v1/conversations", b"null", "application/json", 400, "invalid_json"),
            ("POST", "/v1/conversations", b'{"title": "x"}', "text/plain", 415,
             "unsupported_media_type"),
            ("POST", "/v1/conversations", io.BytesIO(b"x" * 2_000_000), "application/json", 413,
             "body_too_large"),
            ("POST", "/web/session", b"[" * 100_000, "application/json", 400, "json_too_deep"),
        ]
        for method, path, body, content_type, status, code in cases:
            error = await json_call(visitor, method, path, expect=status, data=body,
                                    headers={"Content-Type": content_type})
            assert error["error"]["code"] == code and error["error"]["message"]
        async with daemon.admin(me["smith_id"]) as admin:
            error = await json_call(admin, "PATCH", f"/v1/smiths/{me['smith_id']}", expect=400,
                                    data=deep, headers={"Content-Type": "application/json"})
            assert error["error"]["code"] == "json_too_deep"
            # Unknown routes and methods answer JSON too.
            error = await json_call(admin, "GET", "/v1/nothing-here", expect=404)
            assert error["error"]["message"] == "Not Found"


async def test_broken_uploads_are_4xx(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon, daemon.client() as visitor:
        await session(visitor)
        part = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
                b"Content-Type: text/plain\r\n\r\nhello\r\n--xyz--\r\n")
        cases = [
            (b"", "multipart/form-data; boundary=xyz", 400),  # no parts at all
            (b"--xyz--\r\n", "multipart/form-data; boundary=xyz", 400),  # no 'file' part
            (part, "multipart/form-data; boundary=other", 400),  # the wrong boundary
            (part, "multipart/form-data", 400),  # no boundary
            (part[:60], "multipart/form-data; boundary=xyz", 400),  # cut short
            (part.replace(b"Content-Type", b"Content Type"), "multipart/form-data; boundary=xyz",
             400),  # a header line that is no header
            (part, "text/plain", 415),
        ]
        for body, content_type, status in cases:
            error = await json_call(visitor, "POST", "/v1/files", expect=status, data=body,
                                    headers={"Content-Type": content_type})
            assert error["error"]["message"], body

        async def chunked() -> object:
            yield part

        error = await json_call(visitor, "POST", "/v1/files", expect=411, data=chunked(),
                                headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert error["error"]["code"] == "length_required"
        # The well-formed upload still works.
        uploaded = await json_call(visitor, "POST", "/v1/files", data=part,
                                   headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert uploaded["bytes"] == 5


async def test_an_unexpected_error_is_a_json_500_logged_not_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("the secret internals of the failure")

    app = web.Application(middlewares=[errors_as_json])
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with caplog.at_level(logging.ERROR, logger="bot.http.server"):
            async with aiohttp.ClientSession() as client, client.get(
                f"http://127.0.0.1:{port}/broken"
            ) as response:
                assert response.status == 500
                body = await response.text()
    finally:
        await runner.cleanup()
    assert json.loads(body) == {"error": {"message": "internal error", "type": "server_error",
                                          "code": None}}
    assert "secret internals" not in body and "Traceback" not in body
    [record] = [r for r in caplog.records if r.name == "bot.http.server"]
    assert record.exc_info is not None and "GET /broken" in record.getMessage()


async def test_operator_bodies_of_another_type_are_415(sqlite_url: str) -> None:
    async with running(sqlite_url) as daemon, daemon.admin() as admin:
        error = await json_call(admin, "POST", "/v1/smiths/nope/tokens", expect=415,
                                data=b"{}", headers={"Content-Type": "text/plain"})
        assert error["error"]["code"] == "unsupported_media_type"


async def test_a_request_aiohttp_cannot_parse_is_one_info_line(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running(sqlite_url) as daemon:
        port = daemon.app.http_port
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: \x01\x02\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        await writer.wait_closed()
    assert status_line.split()[1] == b"400"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    [line] = [r for r in caplog.records if r.name == "bot.http.protocol"]
    assert line.levelno == logging.INFO and line.exc_info is None
    assert line.getMessage().startswith("malformed HTTP request refused (400)")
