"""A running daemon around the spine fakes, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.app import Application
from bot.store.migrate import upgrade
from tests.conftest import make_settings
from tests.pipeline.fakes import RecordingConnector, ScriptedRunner

AppFactory = Callable[..., Any]


@pytest.fixture
async def make_app(db_url: str) -> AsyncIterator[AppFactory]:
    started: list[Application] = []

    async def factory(
        runner: ScriptedRunner, connector: RecordingConnector | None = None, **sections: Any
    ) -> Application:
        async def runner_factory(_: Application) -> ScriptedRunner:
            return runner

        app = Application(
            make_settings(db_url, **sections),
            runner_factory=runner_factory,
            connectors=[connector or RecordingConnector()],
            serve_http=False,
        )
        await upgrade(app.db.engine)
        await app.start()
        started.append(app)
        return app

    yield factory
    for app in started:
        await app.stop()
