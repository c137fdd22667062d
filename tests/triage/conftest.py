"""Applications wired to the fake helpdesk and the scripted runner; each one is stopped after
the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.app import Application
from bot.connector import Connector
from bot.store.migrate import upgrade
from tests.conftest import make_settings
from tests.triage.fakes import Desk, DeskRunner

AppFactory = Callable[..., Awaitable[Application]]


def runner_factory(delay: float = 0.0) -> Callable[[Application], Awaitable[DeskRunner]]:
    async def factory(app: Application) -> DeskRunner:
        # The runner looks connectors up when a turn runs, after they have started.
        return DeskRunner(app.connectors, delay=delay)

    return factory


@pytest.fixture
async def make_app() -> AsyncIterator[AppFactory]:
    started: list[Application] = []

    async def factory(
        db_url: str, desk: Desk, *, delay: float = 0.0, wrapper: Any = None, **sections: Any
    ) -> Application:
        connectors: list[Connector] = [desk]
        app = Application(
            make_settings(db_url, **sections),
            runner_factory=runner_factory(delay),
            connectors=connectors,
            serve_http=False,
            connector_wrapper=wrapper,
        )
        await upgrade(app.db.engine)
        await app.start()
        started.append(app)
        return app

    yield factory
    for app in reversed(started):
        await app.stop()
