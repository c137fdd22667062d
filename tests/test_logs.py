"""Every log line of a turn carries its thread and run ids; secrets never reach the log."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot import logs
from bot.app import Application
from bot.logs import JsonFormatter, TurnIdsFilter
from bot.pipeline.turn import TurnContext
from bot.store.migrate import upgrade
from tests.conftest import make_settings
from tests.pipeline.fakes import RecordingConnector, ScriptedRunner, wait_for
from tests.pipeline.test_spine import message


async def test_turn_log_lines_carry_thread_and_run_ids(sqlite_url: str) -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TurnIdsFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)

    async def hook(ctx: TurnContext) -> None:
        logging.getLogger("tests.runner").info("thinking about %s", ctx.user_text)

    runner, connector = ScriptedRunner(hook=hook), RecordingConnector()

    async def factory(_: Application) -> ScriptedRunner:
        return runner

    app = Application(make_settings(sqlite_url), runner_factory=factory,
                      connectors=[connector], serve_http=False)
    await upgrade(app.db.engine)
    await app.start()
    try:
        await app.submit(message("hello", "k1"))
        await wait_for(lambda: len(connector.sent) == 1)
    finally:
        await app.stop()
        root.removeHandler(handler)
        root.setLevel(previous)

    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    [run] = runner.turns
    turn_lines = [l for l in lines if l["logger"] in ("tests.runner", "bot.pipeline.dispatcher")
                  and l["msg"].startswith(("turn ", "thinking"))]
    assert {l["msg"].split(" ")[0] for l in turn_lines} == {"turn", "thinking"}
    for line in turn_lines:
        assert line["thread_id"] == run.thread.id
        assert line["run_id"] == run.run_id
    outside = [l for l in lines if l["logger"] == "bot.app"]
    assert all("run_id" not in l for l in outside)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_logs_never_carry_credentials(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    """The CLI's logging setup masks credentials whatever a line says, its traceback included."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("INFO", fmt, secrets={"xoxb-configured-token"})
    try:
        log = logging.getLogger("tests.leaky")
        log.info("connecting to %s", "postgresql+asyncpg://bot:Log-Db-Pw@db:5432/support")
        log.warning("proxy http://user:Log-Proxy-Pw@proxy:3128 refused; token=%s", "xoxb-configured-token")
        log.info("GET https://api.example/v1?api_key=Log-Query-Key&page=2")
        try:
            raise RuntimeError("auth failed for https://bot:Log-Exc-Pw@models.example/v1")
        except RuntimeError:
            log.exception("model call failed")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    for secret in ("Log-Db-Pw", "Log-Proxy-Pw", "xoxb-configured-token", "Log-Query-Key", "Log-Exc-Pw"):
        assert secret not in err, secret
    assert "postgresql+asyncpg://bot:***@db:5432/support" in err
    assert "api_key=***&page=2" in err
    assert "Traceback" in err and "https://bot:***@models.example/v1" in err
