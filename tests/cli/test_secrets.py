"""Credentials never in what the CLI prints or logs: `config check` and a command's DEBUG logs,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DB_PASSWORD = "Db-Password-42"
MODEL_PASSWORD = "Model-Password-42"
QUERY_TOKEN = "Query-Token-42"
ADMIN_TOKEN = "Admin-Token-42"


def _with_password(db_url: str) -> str:
    """The test database's URL with a password in it (trust auth ignores it on PostgreSQL;
    SQLite URLs carry none)."""
    if db_url.startswith("postgresql"):
        return db_url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
    return db_url


def _supportbot(cwd: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SUPPORTBOT_DATABASE__URL": _with_password(db_url),
        "SUPPORTBOT_MODEL__BASE_URL": f"https://bot:{MODEL_PASSWORD}@models.example/v1",
        "SUPPORTBOT_INTERCOM__BASE_URL": f"https://intercom.example/?access_token={QUERY_TOKEN}",
        "SUPPORTBOT_ADMIN__TOKEN": ADMIN_TOKEN,
        "SUPPORTBOT_LOG__LEVEL": "DEBUG",
        "SUPPORTBOT_DATABASE__ECHO": "true",
    }
    env.pop("SUPPORTBOT_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, env=env,
                          check=False, capture_output=True, text=True, timeout=120)


def _assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    for secret in (DB_PASSWORD, MODEL_PASSWORD, QUERY_TOKEN, ADMIN_TOKEN):
        assert secret not in result.stdout, secret
        assert secret not in result.stderr, secret


def test_config_check_masks_every_credential(db_url: str, tmp_path: Path) -> None:
    result = _supportbot(tmp_path, db_url, "config", "check")
    assert result.returncode == 0, result.stderr
    _assert_clean(result)
    shown = json.loads(result.stdout)
    if db_url.startswith("postgresql"):
        assert shown["database"]["url"].startswith("postgresql+asyncpg://postgres:***@127.0.0.1")
    else:
        assert shown["database"]["url"] == db_url
    assert shown["model"]["base_url"] == "https://bot:***@models.example/v1"
    assert shown["intercom"]["base_url"] == "https://intercom.example/?access_token=***"
    assert shown["admin"]["token"] == "***"


def test_a_command_logs_no_credentials(db_url: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\nRefunds take five days.\n")
    upgraded = _supportbot(tmp_path, db_url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    _assert_clean(upgraded)
    ingested = _supportbot(tmp_path, db_url, "kb", "ingest", str(docs))
    assert ingested.returncode == 0, ingested.stderr
    assert "sqlalchemy.engine" in ingested.stderr  # the DEBUG/echo logs did run
    _assert_clean(ingested)
