"""One daemon for the whole fuzz suite: every connector on (web, Intercom, Slack against their
fakes), a turn runner that answers at once, small body limits so "too large" is cheap to reach.

It runs on its own event loop in a thread, so Hypothesis and Schemathesis drive it with plain
blocking HTTP (``requests``) as any outside client would. Every log record at ERROR or above,
from any logger, is kept: the suite fails on any (an unhandled exception is logged there).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from hypothesis import HealthCheck, settings

from bot.app import Application
from bot.domain import StopReason
from bot.pipeline.turn import TurnContext, TurnResult
from tests.conftest import make_settings
from tests.fakes.intercom import FakeIntercom
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack

ADMIN = "fuzz-admin-token"
INTERCOM_SECRET = b"fuzz-intercom-secret"
IDENTITY_SECRET = "fuzz-identity-secret"
MAX_BODY = 16_384
MAX_UPLOAD = 4_096

T = TypeVar("T")

# Bounded and reproducible: the same examples on every run, no example database, and no
# deadline (two shared cores make single examples slow now and then, which is not a finding).
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)


class InstantRunner:
    """Answers every turn at once: the fuzz suite is about the HTTP edge, not the agent."""

    async def run(self, ctx: TurnContext) -> TurnResult:
        return TurnResult(output_text="Thanks, noted.", stop_reason=StopReason.END_TURN,
                          model="fuzz")


class ErrorRecords(logging.Handler):
    """Every record at ERROR or above, from any thread."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self.records.append(record)

    def take(self) -> list[str]:
        with self._guard:
            taken, self.records = self.records, []
        return [f"{r.name}: {r.getMessage()}" + (f"\n{self.format(r)}" if r.exc_info else "")
                for r in taken]


@dataclass
class Target:
    """The running daemon and what a caller needs to reach every route."""

    url: str
    smith_id: str
    conversation_id: str
    errors: ErrorRecords
    http: requests.Session = field(default_factory=requests.Session)

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request; fails at once on a 5xx or on anything logged at ERROR meanwhile."""
        response = self.http.request(method, self.url + path, timeout=30, **kwargs)
        problems = self.errors.take()
        assert response.status_code < 500, (
            f"{method} {path} → {response.status_code}: {response.text[:500]}\n"
            f"request headers: {kwargs.get('headers')}\nbody: {_preview(kwargs.get('data'))}"
        )
        assert not problems, f"{method} {path} logged:\n" + "\n".join(problems)
        return response


def _preview(data: Any) -> str:
    if isinstance(data, bytes | str):
        return repr(data[:300]) + (f"… ({len(data)} bytes)" if len(data) > 300 else "")
    return repr(data)[:300]


class _Loop:
    """An event loop in a thread, and a way to run a coroutine on it and wait."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-daemon",
                                       daemon=True)
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    loop = _Loop()
    intercom = FakeIntercom()
    slack = FakeSlack()
    loop.run(intercom.start())
    loop.run(slack.__aenter__())
    settings_ = make_settings(
        f"sqlite+aiosqlite:///{folder / 'fuzz.db'}",
        connectors=["web", "intercom", "slack"],
        admin={"token": ADMIN},
        http={"host": "127.0.0.1", "port": 0, "max_body_bytes": MAX_BODY},
        web={"identity_secret": IDENTITY_SECRET, "max_upload_bytes": MAX_UPLOAD},
        intercom={"token": intercom.token, "client_secret": INTERCOM_SECRET.decode(),
                  "base_url": intercom.base_url, "api_version": intercom.api_version,
                  "retry_backoff_seconds": 0.01, "poll_interval_seconds": 0},
        slack={"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
               "base_url": slack.base_url, "post_interval_seconds": 0},
    )

    async def runner(app: Application) -> InstantRunner:
        return InstantRunner()

    app = Application(settings_, runner_factory=runner)
    errors = ErrorRecords()
    logging.getLogger().addHandler(errors)
    loop.run(app.start())
    try:
        url = f"http://127.0.0.1:{app.http_port}"
        # A smith and a conversation of its own, so the fuzzed ids sometimes hit real objects.
        visitor = requests.Session()
        me = visitor.post(url + "/web/session", json={}, timeout=30).json()
        conversation = visitor.post(url + "/v1/conversations", json={"title": "fuzz"},
                                    timeout=30).json()
        yield Target(url, me["smith_id"], conversation["id"], errors)
    finally:
        loop.run(app.stop())
        loop.run(slack.__aexit__(None, None, None))
        loop.run(intercom.close())
        loop.close()
        logging.getLogger().removeHandler(errors)


@pytest.fixture(autouse=True)
def _nothing_logged_at_error(target: Target) -> Iterator[None]:
    """Errors logged outside a request (a turn, the outbox) fail the test that caused them."""
    target.errors.take()
    yield
    problems = target.errors.take()
    assert not problems, "logged at ERROR:\n" + "\n".join(problems)
