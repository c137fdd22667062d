"""Shared fixtures: a network guard, and a fresh database per test on SQLite and PostgreSQL.

PostgreSQL is the real server at ``$SUPPORTBOT_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each test gets its own database, dropped after.
Unreachable PostgreSQL skips those tests locally and fails them on CI (``CI=true``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.config import DatabaseSettings, Settings
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.store import Store

PG_URL = os.environ.get("SUPPORTBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# -- no test reaches the internet --------------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # unix sockets
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _allowed(address):
        raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _allowed(address):
        raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def _keyword_search_unless_asked() -> Iterator[None]:
    """The suite searches by keyword unless a test configures an embeddings backend itself.

    With the ``embeddings`` extra installed (the test command installs it), the default
    ``backend = "auto"`` would load the model in every test that builds a knowledge base, and in
    every daemon a test starts as a subprocess (it inherits the environment variable).
    """
    from bot.config import knowledge

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND", "none")
        patch.setattr(knowledge, "auto_backend", lambda: "none")
        yield


# -- databases -----------------------------------------------------------------------------------


async def _pg_admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        if ON_CI:
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable on CI: {exc}")
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {exc}")


async def make_database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """Yield a URL to a brand-new empty database of ``kind``; drop it afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'supportbot.db'}"
        return
    admin = await _pg_admin()
    name = f"sbtest_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}"
    finally:
        admin = await asyncpg.connect(PG_URL, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database, once on SQLite and once on PostgreSQL."""
    async for url in make_database_url(request.param, tmp_path):
        yield url


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> AsyncIterator[str]:
    async for url in make_database_url("sqlite", tmp_path):
        yield url


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async for url in make_database_url("postgresql", tmp_path):
        yield url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A migrated store on each database."""
    db = Database(DatabaseSettings(url=db_url))
    await upgrade(db.engine)
    try:
        yield Store(db)
    finally:
        await db.dispose()


class Ticks:
    """Counts the event loop's iterations (one task that yields in a loop)."""

    def __init__(self) -> None:
        self.count = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    def stop(self) -> None:
        self._task.cancel()


def make_settings(db_url: str, **sections: Any) -> Settings:
    """Settings for a test: the given database, an ephemeral HTTP port, fast polling."""
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "http": {"port": 0},
        "pipeline": {"poll_interval_seconds": 0.05, "outbox_backoff_seconds": 0.01},
        "log": {"format": "text"},
        "connectors": [],
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Settings.model_validate(data)
