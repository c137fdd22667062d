"""Where the daemon may download a customer's file from.

A file URL arrives inside a platform's payload, and a payload is data: a URL in it could point
at the metadata service, an admin port on the private network, or a host that collects what it
is sent (the Slack bot token goes with a Slack file). So a channel's files are fetched only from
the hosts its settings list (``intercom.attachment_hosts``, ``slack.file_hosts``):

- a pattern is a host name (``files.slack.com``) or ``*.`` and a domain (``*.intercom-attachments-7.com``:
  that domain and every name under it); names compare case-insensitively, without a trailing dot;
- only ``https``; a listed name must resolve to public addresses only (no loopback, private,
  link-local, reserved…), checked on the addresses the connection actually uses, so a name that
  resolves to 10.0.0.1 at download time is refused whatever it resolved to before;
- an IP address is allowed only when it is listed as it is (``127.0.0.1``: tests and local
  fakes), and then plain ``http`` too — such a URL never leaves the machine or network named;
- a redirect is followed by hand, at most ``MAX_REDIRECTS`` of them, each hop checked as above.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FileRefused(Exception):
    """A file URL (or a redirect's target) the allow-list refuses; ``str()`` says why."""


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class FileHosts:
    """A channel's allow-list of file hosts (see the module docstring for the rules)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        names: set[str] = set()
        domains: set[str] = set()
        addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        for raw in patterns:
            pattern = raw.strip().lower().rstrip(".")
            if not pattern:
                continue
            if pattern.startswith("*."):
                domains.add(pattern[2:])
            elif (address := _ip(pattern)) is not None:
                addresses.add(address)
            else:
                names.add(pattern)
        self._names = frozenset(names)
        self._domains = frozenset(domains)
        self._addresses = frozenset(addresses)

    def _name_listed(self, host: str) -> bool:
        if host in self._names:
            return True
        return any(host == domain or host.endswith("." + domain) for domain in self._domains)

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be fetched, or None when it may."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            return "no host in the URL"
        address = _ip(host)
        if address is not None:
            if address not in self._addresses:
                return f"{host} is not an allowed file host"
            return None if parts.scheme in ("http", "https") else "not an http(s) URL"
        if not self._name_listed(host):
            return f"{host} is not an allowed file host"
        return None if parts.scheme == "https" else "not an https URL"

    def session(self, *, timeout: float) -> aiohttp.ClientSession:
        """A session whose connections go only to public addresses (or listed IPs)."""
        connector = aiohttp.TCPConnector(resolver=_PublicResolver(DefaultResolver(), self))
        return aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
        )

    def address_allowed(self, address: str) -> bool:
        """A resolved address may be connected to: public, or listed as it is."""
        ip = _ip(address)
        if ip is None:
            return False
        return ip in self._addresses or ip.is_global


class _PublicResolver(AbstractResolver):
    """Resolves through ``inner`` and drops every address that is not allowed; a name left
    with none fails to resolve (aiohttp reports a connection error). aiohttp does not ask the
    resolver about an IP literal: ``FileHosts.refusal`` allows those only when listed."""

    def __init__(self, inner: AbstractResolver, hosts: FileHosts) -> None:
        self._inner = inner
        self._hosts = hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if self._hosts.address_allowed(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves to no public address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@asynccontextmanager
async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    hosts: FileHosts,
    *,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET ``url`` through ``session``, following redirects only onto allowed hosts; yields
    the final response. Raises ``FileRefused`` for a URL or a hop the list refuses, and
    whatever aiohttp raises. ``headers`` go to the first host only (a token for the platform's
    file host is not handed on to where it redirects)."""
    current = url
    sent = dict(headers or {})
    for _ in range(MAX_REDIRECTS + 1):
        if (reason := hosts.refusal(current)) is not None:
            raise FileRefused(reason)
        async with session.get(current, headers=sent, allow_redirects=False) as response:
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                yield response
                return
        nxt = urljoin(current, location)
        if urlsplit(nxt).hostname != urlsplit(current).hostname:
            sent = {}
        current = nxt
    raise FileRefused(f"more than {MAX_REDIRECTS} redirects")
