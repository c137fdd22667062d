"""The file host allow-list (``bot.http.file_hosts``): which URLs may be fetched, the addresses
a listed name may connect to, and redirects checked hop by hop. A fake file host on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.config import IntercomSettings, SlackSettings
from bot.http.file_hosts import FileHosts, FileRefused, fetch


def test_the_default_lists_take_intercoms_and_slacks_file_hosts_only() -> None:
    intercom = FileHosts(IntercomSettings().attachment_hosts)
    for url in (
        "https://downloads.intercomcdn.com/i/o/1/abc/shot.png?expires=1&signature=x",
        "https://downloads.intercomcdn.eu/i/o/1/abc/shot.png",
        "https://downloads.au.intercomcdn.com/i/o/1/abc/shot.png",
        "https://acme-1a2b3c.intercom-attachments-7.com/i/o/1/abc/log.txt",
        "https://acme.intercom-attachments.eu/i/o/1/abc/log.txt",
        "https://au.intercom-attachments.com/i/o/1/abc/log.txt",
        "https://UPLOADS.IntercomCDN.com./x",
    ):
        assert intercom.refusal(url) is None, url
    refused = {
        "http://downloads.intercomcdn.com/x": "not an https URL",
        "https://downloads.intercomcdn.com.evil.example/x": "downloads.intercomcdn.com.evil.example "
        "is not an allowed file host",
        "https://evilintercom-attachments-7.com/x": "evilintercom-attachments-7.com is not an "
        "allowed file host",
        "https://169.254.169.254/latest/meta-data": "169.254.169.254 is not an allowed file host",
        "https://127.0.0.1/x": "127.0.0.1 is not an allowed file host",
        "file:///etc/passwd": "no host in the URL",
        "https://files.slack.com/files-pri/T1-F1/a.png": "files.slack.com is not an allowed file "
        "host",
    }
    for url, reason in refused.items():
        assert intercom.refusal(url) == reason, url
    slack = FileHosts(SlackSettings().file_hosts)
    assert slack.refusal("https://files.slack.com/files-pri/T1-F1/a.png") is None
    assert slack.refusal("https://files.slack.com.evil.example/a.png") is not None


def test_an_ip_is_allowed_only_as_listed_and_then_over_http_too() -> None:
    hosts = FileHosts(["127.0.0.1", "*.example.com"])
    assert hosts.refusal("http://127.0.0.1:8080/f") is None
    assert hosts.refusal("http://127.0.0.2:8080/f") == "127.0.0.2 is not an allowed file host"
    assert hosts.refusal("http://files.example.com/f") == "not an https URL"
    assert hosts.address_allowed("127.0.0.1") and hosts.address_allowed("93.184.215.14")
    for private in ("127.0.0.2", "10.0.0.1", "192.168.1.1", "169.254.169.254", "::1", "fd00::1"):
        assert not hosts.address_allowed(private), private


@pytest.fixture
async def file_host() -> AsyncIterator[tuple[str, list[tuple[str, str | None]]]]:
    """A file host on 127.0.0.1: ``/f`` serves a file, ``/hop`` redirects to ``/f``,
    ``/away`` redirects to another host; requests are recorded (path, Authorization)."""
    seen: list[tuple[str, str | None]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append((request.path, request.headers.get("Authorization")))
        if request.path == "/hop":
            raise web.HTTPFound("/f")
        if request.path == "/away":
            raise web.HTTPFound(f"http://localhost:{request.url.port}/f")
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        return web.Response(body=b"file")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_redirects_are_followed_only_onto_allowed_hosts(
    file_host: tuple[str, list[tuple[str, str | None]]],
) -> None:
    base, seen = file_host
    hosts = FileHosts(["127.0.0.1"])
    async with hosts.session(timeout=5) as session:
        async with fetch(session, f"{base}/hop", hosts, headers={"Authorization": "t"}) as response:
            assert await response.read() == b"file"
        with pytest.raises(FileRefused, match="localhost is not an allowed file host"):
            async with fetch(session, f"{base}/away", hosts):
                pass
        with pytest.raises(FileRefused, match="more than 3 redirects"):
            async with fetch(session, f"{base}/loop", hosts):
                pass
    assert seen[:3] == [("/hop", "t"), ("/f", "t"), ("/away", None)]
    assert all(path != "/f" for path, _ in seen[3:])


async def test_a_listed_name_that_resolves_to_a_private_address_is_not_connected_to(
    file_host: tuple[str, list[tuple[str, str | None]]],
) -> None:
    """``localhost`` is listed, but it resolves to loopback: no connection is made."""
    base, seen = file_host
    hosts = FileHosts(["localhost"])
    url = base.replace("http://127.0.0.1", "https://localhost")
    async with hosts.session(timeout=5) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            async with fetch(session, f"{url}/f", hosts):
                pass
    # Refused by the resolver, not by a failed TLS handshake with the plain-http fake.
    assert "localhost resolves to no public address" in str(refused.value.os_error)
    assert seen == []
