"""The aiohttp application: ``/healthz``, ``/readyz``, ``/metrics`` and every connector's routes.

Errors leave as JSON: a refusal (``HTTPException``) keeps its status with a JSON body naming the
reason, and anything a handler did not expect is logged here with its traceback and answered
500 with a body that says nothing about the code.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from bot.console.pages import ConsolePages
from bot.http.api import mount_api
from bot.http.sessions import session_middleware

if TYPE_CHECKING:
    from bot.daemon import Daemon

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DAEMON_KEY: web.AppKey[Daemon] = web.AppKey("supportbot", "Daemon")  # type: ignore[arg-type]


async def healthz(request: web.Request) -> web.Response:
    """Up (200) from the moment the server listens; with an embeddings backend, how far the
    chunk vectors are (searches are keyword-only until ``state`` is ``ready``)."""
    body: dict[str, Any] = {"status": "ok"}
    vectors = request.app[DAEMON_KEY].vectors
    if vectors is not None:
        body["knowledge"] = {"vectors": vectors.progress.as_json()}
    return web.json_response(body)


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[DAEMON_KEY].ready()
    ok = all(checks.values())
    return web.json_response(
        {"status": "ready" if ok else "not ready", "checks": checks}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    body = request.app[DAEMON_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class ProtocolLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger aiohttp's connection handler reports through (``AppRunner(logger=…)``).

    aiohttp answers a request it cannot parse (a bad header byte, a broken request line) with
    400 itself, then logs it at ERROR with a traceback: anyone could fill the log with those.
    They are the sender's mistake, so they become one INFO line; everything else stays ERROR.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.info("malformed HTTP request refused (400): %s",
                      (exc_info.message or "").splitlines()[0] if exc_info.message else exc_info)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


def protocol_logger() -> logging.LoggerAdapter:  # type: ignore[type-arg]
    return ProtocolLog(logging.getLogger("bot.http.protocol"), {})


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The last resort: no traceback, and no plain-text error, ever reaches a client."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        # aiohttp's own refusals (404, 405, 413 over client_max_size) are plain text.
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}
        return web.json_response(
            {"error": {"message": exc.reason, "type": "invalid_request_error", "code": None}},
            status=exc.status, headers=headers,
        )
    except Exception:
        log.exception("unhandled error answering %s %s", request.method, request.path)
        return web.json_response(
            {"error": {"message": "internal error", "type": "server_error", "code": None}},
            status=500,
        )


def build_http_app(daemon: Daemon) -> web.Application:
    signouts = daemon.store.console_signouts
    http = web.Application(
        client_max_size=daemon.settings.http.max_body_bytes,
        middlewares=[errors_as_json, session_middleware(daemon.settings, signouts.signed_out)],
    )
    http[DAEMON_KEY] = daemon
    http.router.add_get("/healthz", healthz)
    http.router.add_get("/readyz", readyz)
    http.router.add_get("/metrics", metrics)
    mount_api(http, daemon)
    console = ConsolePages(daemon.settings, sign_out=signouts.sign_out)
    http.on_startup.append(lambda _: console.load())
    http.router.add_routes(console.routes())
    for connector in daemon.connectors.values():
        http.router.add_routes(connector.routes())
    return http
