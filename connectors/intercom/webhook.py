"""``POST /webhooks/intercom`` (and ``HEAD`` for Intercom's URL check).

Order of checks: size (413) → signature over the raw body (401, nothing parsed, nothing
stored) → JSON, bounded in depth (400) → the notification's conversation item (400). Intercom
waits about 500 ms (5 s at most) and retries a failed delivery once a minute later, so the
handler only stores the delivery as it came (one insert, ignored for a redelivery) and
answers; its messages reach the inbox after the answer (``parse_delivery``), and the turn runs
later in the dispatcher. A store that does not answer gives 503, so Intercom tries again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from functools import lru_cache
from typing import TYPE_CHECKING

from aiohttp import web

from bot.http.bodies import BodyRefused, parse_json, read_body

if TYPE_CHECKING:
    from connectors.intercom.connector import IntercomConnector

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/intercom"
SIGNATURE_HEADER = "X-Hub-Signature"


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Intercom sends for ``body``."""
    return "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of ``sha1=<hex HMAC-SHA1 of the raw body>``."""
    if not header:
        return False
    given = header.strip()
    if not given.isascii():  # a hex digest is ASCII; compare_digest refuses anything else
        return False
    if given.lower().startswith("sha1="):
        given = given[5:]
    expected = _hmac_sha1(secret, body)
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())


# hashlib lets go of the GIL while it hashes this many bytes or more at once, and ``hmac.digest``
# always does: taking it back waits behind whichever thread took it meanwhile — on SQLite the
# writer, storing this very delivery — 30–50 µs a request measured (``bench/ingest_cpu.py``
# under load, 1.4 kB bodies), 3–4 times the hashing. In smaller pieces the GIL stays here.
_GIL_FREE_BYTES = 2048


def _hmac_sha1(secret: bytes, body: bytes) -> str:
    mac = hmac.new(secret, digestmod=hashlib.sha1)
    view = memoryview(body)
    for at in range(0, len(body), _GIL_FREE_BYTES - 1):
        mac.update(view[at : at + _GIL_FREE_BYTES - 1])
    return mac.hexdigest()


class WebhookEndpoint:
    def __init__(self, connector: IntercomConnector, *, secret: bytes | None, max_body_bytes: int):
        self._connector = connector
        self._secret = secret
        self._max_body = max_body_bytes

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.post), web.head(WEBHOOK_PATH, self.head)]

    async def head(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def post(self, request: web.Request) -> web.Response:
        try:
            body = await read_body(request, self._max_body)
        except BodyRefused as refused:
            return _answer(refused.status, refused.reason)
        if self._secret is None:
            log.warning("Intercom webhook refused: intercom.client_secret is not set")
            return _answer(401, "webhooks are not configured")
        if not signature_ok(self._secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("Intercom webhook refused: bad or missing %s", SIGNATURE_HEADER)
            return _answer(401, "bad signature")
        try:
            payload = parse_json(body)
        except BodyRefused as refused:
            return _answer(refused.status, refused.reason)
        if not isinstance(payload, dict):
            return _answer(400, "expected a JSON object")
        status, reason = await self._connector.receive(payload, body)
        return _answer(status, reason)


def _answer(status: int, reason: str) -> web.Response:
    return web.Response(body=_answer_body(status, reason), status=status,
                        content_type="application/json")


@lru_cache(maxsize=64)
def _answer_body(status: int, reason: str) -> bytes:
    """An answer's JSON, encoded once for the few answers given over and over."""
    return json.dumps({"status": "ok" if status < 300 else "error", "reason": reason}).encode()
