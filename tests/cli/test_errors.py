"""Ordinary mistakes as a user meets them: `supportbot …` exits 2 with one line on stderr that
names the cause and the fix, never a traceback. Bugs still get their traceback."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot import cli
from bot.config import DatabaseSettings
from bot.store.database import Database
from bot.store.migrate import upgrade


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def _supportbot(cwd: Path, *args: str, **env: str) -> Result:
    environ = {**os.environ, **env}
    environ.pop("SUPPORTBOT_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=cwd, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def _one_line(result: Result, *needles: str) -> str:
    """The single ``supportbot:`` line of a failed command; asserts exit 2 and no traceback."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("supportbot:")]
    assert len(lines) == 1 and result.stderr.rstrip().endswith(lines[0]), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


async def _migrate(db_url: str, revision: str = "head") -> None:
    db = Database(DatabaseSettings(url=db_url))
    try:
        await upgrade(db.engine, revision)
    finally:
        await db.dispose()


async def test_operator_commands_on_a_database_behind(db_url: str, tmp_path: Path) -> None:
    await _migrate(db_url, "0001")
    commands = [
        ("smiths", "list"),
        ("runs", "list"),
        ("threads", "show", "thr_nope"),
        ("kb", "search", "password"),
        ("agents", "versions", "support"),
    ]
    if db_url.startswith("sqlite"):
        # The embedded SQLite database upgrades itself: nothing to tell the user.
        result = await _supportbot(tmp_path, *commands[0], SUPPORTBOT_DATABASE__URL=db_url)
        assert result.returncode == 0, result.stderr
        return
    results = await asyncio.gather(
        *(_supportbot(tmp_path, *c, SUPPORTBOT_DATABASE__URL=db_url) for c in commands)
    )
    for result in results:
        _one_line(result, "the database schema is at 0001", "run `supportbot db upgrade`")


async def test_names_that_do_not_exist(db_url: str, tmp_path: Path) -> None:
    await _migrate(db_url)
    env = {"SUPPORTBOT_DATABASE__URL": db_url}
    versions, thread, promote = await asyncio.gather(
        _supportbot(tmp_path, "agents", "versions", "nope", **env),
        _supportbot(tmp_path, "threads", "show", "thr_nope", **env),
        _supportbot(tmp_path, "agents", "promote", "support", "9", **env),
    )
    _one_line(versions, "no agent 'nope'")
    _one_line(thread, "no thread 'thr_nope'")
    _one_line(promote, "no agent 'support'")  # nothing published yet


async def test_serve_on_a_port_in_use(db_url: str, tmp_path: Path) -> None:
    await _migrate(db_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await _supportbot(
            tmp_path, "serve", SUPPORTBOT_DATABASE__URL=db_url, SUPPORTBOT_HTTP__PORT=str(port)
        )
    line = _one_line(result)
    assert line == (
        f"supportbot: port {port} on 127.0.0.1 is in use: stop the other process or set http.port"
    )


async def test_unreachable_databases(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    missing_folder = tmp_path / "no" / "such" / "folder"
    postgres, sqlite, serve = await asyncio.gather(
        _supportbot(
            tmp_path, "smiths", "list",
            SUPPORTBOT_DATABASE__URL=f"postgresql://bot:Unreachable-Pw1@127.0.0.1:{closed}/support",
        ),
        _supportbot(
            tmp_path, "kb", "search", "refund",
            SUPPORTBOT_DATABASE__URL=f"sqlite:///{missing_folder}/supportbot.db",
        ),
        _supportbot(
            tmp_path, "serve", SUPPORTBOT_HTTP__PORT="0",
            SUPPORTBOT_DATABASE__URL=f"sqlite:///{missing_folder}/supportbot.db",
        ),
    )
    line = _one_line(postgres, f"127.0.0.1:{closed}/support", "bot:***@", "database.url")
    assert "Unreachable-Pw1" not in postgres.stderr + postgres.stdout
    assert line
    for result in (sqlite, serve):
        _one_line(result, f"the folder {missing_folder} does not exist", "create it")


async def test_a_file_that_cannot_be_written(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "digest.json"
    result = await _supportbot(
        tmp_path, "triage", "--once", "--json", str(target),
        SUPPORTBOT_DATABASE__URL=f"sqlite:///{tmp_path}/supportbot.db",
    )
    _one_line(result, f"{target}: No such file or directory: check the path")


async def test_a_plain_value_for_a_list_setting(tmp_path: Path) -> None:
    good, bad = await asyncio.gather(
        _supportbot(tmp_path, "config", "check", SUPPORTBOT_SLACK__SUPPORT_CHANNELS="C0SUPPORT"),
        _supportbot(tmp_path, "config", "check", SUPPORTBOT_SLACK__SUPPORT_CHANNELS="[C0SUPPORT"),
    )
    assert good.returncode == 0, good.stderr
    assert '"support_channels": [\n      "C0SUPPORT"\n    ]' in good.stdout
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines() == [
        (
            "config error in env SUPPORTBOT_SLACK__SUPPORT_CHANNELS: slack.support_channels: Value "
            "error, not a JSON list (Expecting value: line 1 column 2 (char 1)); a comma-separated "
            "list works too"
        )
    ]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``main`` configures the root logger as the CLI does; put the test runner's back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_a_bug_keeps_its_traceback_without_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = "postgresql://bot:Traceback-Pw1@127.0.0.1:5432/support"
    monkeypatch.setenv("SUPPORTBOT_DATABASE__URL", url)
    monkeypatch.delenv("SUPPORTBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    async def broken(args: object, settings: object) -> int:
        raise RuntimeError(f"a bug while talking to {url}")

    monkeypatch.setattr(cli, "cmd_smiths_list", broken)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["smiths", "list"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: a bug while talking to" in err
    assert "Traceback-Pw1" not in err and "bot:***@127.0.0.1" in err
