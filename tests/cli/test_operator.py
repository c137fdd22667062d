"""The operator CLI on a populated database: smiths, runs, transcripts, agent versions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.app import Application
from bot.store.migrate import upgrade
from tests.conftest import make_settings
from tests.pipeline.fakes import RecordingConnector, ScriptedRunner, wait_for
from tests.pipeline.test_spine import message


def _cli(db_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUPPORTBOT_DATABASE__URL": db_url}
    env.pop("SUPPORTBOT_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_operator_commands(db_url: str, tmp_path: Path) -> None:
    runner, connector = ScriptedRunner(), RecordingConnector()

    async def factory(_: Application) -> ScriptedRunner:
        return runner

    app = Application(make_settings(db_url), runner_factory=factory,
                      connectors=[connector], serve_http=False)
    await upgrade(app.db.engine)
    await app.start()
    try:
        await app.submit(message("where is my invoice", "k1", thread="test:a", smith="anon:v1"))
        await app.submit(message("reset my password", "k2", thread="test:b", smith="web:u9"))
        await wait_for(lambda: len(connector.sent) == 2)
        threads = {t.external_id: t for t in await app.store.list_threads()}
    finally:
        await app.stop()

    smiths = _cli(db_url, tmp_path, "smiths", "list", "--prefix", "anon:")
    assert smiths.returncode == 0, smiths.stderr
    assert "anon:v1" in smiths.stdout and "web:u9" not in smiths.stdout
    assert "memory=off" in smiths.stdout

    runs = _cli(db_url, tmp_path, "runs", "list", "--prefix", "web:")
    assert runs.returncode == 0, runs.stderr
    assert threads["test:b"].id in runs.stdout and threads["test:a"].id not in runs.stdout

    show = _cli(db_url, tmp_path, "threads", "show", threads["test:a"].id)
    assert show.returncode == 0, show.stderr
    assert "customer: where is my invoice" in show.stdout
    assert "bot (end_turn): echo: where is my invoice" in show.stdout

    missing = _cli(db_url, tmp_path, "threads", "show", "thr_nope")
    assert missing.returncode == 2 and "no thread 'thr_nope'" in missing.stderr

    published = _cli(db_url, tmp_path, "agents", "publish", "support", "--note", "first")
    assert published.returncode == 0, published.stderr
    assert "published support version 1 (live)" in published.stdout
    second = _cli(db_url, tmp_path, "agents", "publish", "support", "--note", "second")
    assert "published support version 2" in second.stdout and "(live)" not in second.stdout
    promoted = _cli(db_url, tmp_path, "agents", "promote", "support", "2")
    assert promoted.returncode == 0 and "version 2 is live" in promoted.stdout
    versions = _cli(db_url, tmp_path, "agents", "versions", "support")
    lines = versions.stdout.splitlines()
    assert len(lines) == 2 and "live" in lines[1] and "live" not in lines[0]
