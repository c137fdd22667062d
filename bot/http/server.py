"""The aiohttp application: ``/healthz``, ``/readyz``, ``/metrics`` and every connector's routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.http.api import mount_api

if TYPE_CHECKING:
    from bot.daemon import Daemon

DAEMON_KEY: web.AppKey[Daemon] = web.AppKey("supportbot", "Daemon")  # type: ignore[arg-type]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[DAEMON_KEY].ready()
    ok = all(checks.values())
    return web.json_response(
        {"status": "ready" if ok else "not ready", "checks": checks}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    body = request.app[DAEMON_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_http_app(daemon: Daemon) -> web.Application:
    http = web.Application(client_max_size=daemon.settings.http.max_body_bytes)
    http[DAEMON_KEY] = daemon
    http.router.add_get("/healthz", healthz)
    http.router.add_get("/readyz", readyz)
    http.router.add_get("/metrics", metrics)
    mount_api(http, daemon)
    for connector in daemon.connectors.values():
        http.router.add_routes(connector.routes())
    return http
