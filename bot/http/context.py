"""What the API handlers share: the daemon's handles, the web queries and the token key."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from bot.domain import NotFound, Smith
from bot.http.auth import Principal, api_error, authenticate
from bot.pipeline.operator import Operator
from bot.store.web import WebStore

if TYPE_CHECKING:
    from bot.daemon import Daemon


class ApiContext:
    """One per HTTP app: the handlers' way to the store, settings and turn machinery."""

    def __init__(self, daemon: Daemon):
        # Named ``app`` for the handlers that submit and subscribe through it.
        self.app = daemon
        self.settings = daemon.settings
        self.store = daemon.store
        self.web = WebStore(daemon.store)
        self._key: bytes | None = None
        self._key_lock = asyncio.Lock()
        # A person's replies, handbacks and closes (the operator API and the console).
        self.operator = Operator(store=daemon.store, handoff=daemon.handoff,
                                 events=daemon.events, connectors=daemon.connectors)

    async def token_key(self) -> bytes:
        if self._key is None:
            async with self._key_lock:
                if self._key is None:
                    self._key = await self.web.token_key()
        return self._key

    async def principal(self, request: web.Request) -> Principal:
        return authenticate(request, self.settings, await self.token_key())

    async def smith(self, principal: Principal) -> Smith:
        """The smith a conversations request acts for; another smith's things are not found."""
        if principal.smith_id is None:
            raise api_error(400, "name the smith to act for in the X-Smith-Id header",
                            code="smith_required")
        try:
            return await self.store.get_smith(principal.smith_id)
        except NotFound:
            raise api_error(404, "no such smith", code="not_found") from None


CONTEXT_KEY: web.AppKey[ApiContext] = web.AppKey("supportbot_api", ApiContext)
