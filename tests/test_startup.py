"""What ``supportbot triage --once`` pays for before its first turn, counted rather than timed.

Each start runs the real command in a fresh interpreter (this test process has imported
everything already) with the embedded defaults: SQLite in the working directory, the offline
responder, the bundled knowledge base. The timing is printed by ``bench/triage.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.intercom import FakeIntercom
from tests.fakes.model_server import (
    RecordedRequest,
    ScriptedModelServer,
    ScriptedReply,
    ScriptedToolCall,
)

# Libraries a one-off sweep with the defaults has no use for before its first search: the HTTP
# server, unconfigured channels, the migration machinery on a database already at head, the
# schedulers, the console, document parsers for formats it does not read, numpy, the local
# embeddings model and its tokenizer (the embeddings backend is off).
NOT_IMPORTED = (
    "alembic",
    "apscheduler",
    "bot.console",
    "bot.knowledge.minilm",
    "bot.http.server",
    "bot.scheduler",
    "connectors.intercom.connector",
    "connectors.slack.connector",
    "jinja2",
    "numpy",
    "pypdf",
    "slack_bolt",
    "tokenizers",
)

PROBE = """
import gc, json, runpy, sys
report, watched = sys.argv[1], sys.argv[2].split(",")
sys.argv = ["supportbot", "triage", "--once", "--since", ""]
collector = {}

def importing(event, args):
    if event == "import" and args[0] == "bot.app" and "bot.app" not in collector:
        collector["bot.app"] = gc.isenabled()

sys.addaudithook(importing)
try:
    runpy.run_module("bot.cli", run_name="__main__")
    code = 0
except SystemExit as stop:
    code = stop.code
collector["exit"] = gc.isenabled()
with open(report, "w") as out:
    imported = sorted(m for m in watched if m in sys.modules)
    json.dump({"code": code, "imported": imported, "collector": collector}, out)
"""


def start(cwd: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One ``triage --once`` in a fresh interpreter: its report and its JSON log records."""
    report = cwd / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    # The defaults as installed without the ``embeddings`` extra: ``auto`` is keyword-only there.
    env["SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND"] = "none"
    env["SUPPORTBOT_LOG__FORMAT"] = "json"
    env["SUPPORTBOT_LOG__LEVEL"] = "INFO"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), ",".join(NOT_IMPORTED)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.exists(), done.stderr
    records = []
    for line in done.stderr.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return json.loads(report.read_text()), records


def ingest_reports(records: list[dict[str, Any]]) -> list[str]:
    return [r["msg"] for r in records if r["msg"].startswith("knowledge: ingest done")]


def test_a_second_start_imports_only_what_the_sweep_uses_and_does_not_reindex(
    tmp_path: Path,
) -> None:
    first, first_log = start(tmp_path)
    assert first["code"] == 0
    (indexed,) = ingest_reports(first_log)
    assert "added=0" not in indexed  # the fresh database got the bundled knowledge base

    second, second_log = start(tmp_path)
    assert second["code"] == 0
    # The database is at head and the knowledge base unchanged: no alembic, no parsing.
    assert second["imported"] == []
    (again,) = ingest_reports(second_log)
    assert "added=0, updated=0, unchanged=" in again and "removed=0" in again


def test_the_command_imports_the_application_with_the_garbage_collector_paused(
    tmp_path: Path,
) -> None:
    """``bot.cli.run.collector_paused``: the ~130,000 long-lived objects the import creates are
    not traversed by collection after collection (``bench/triage_start.py`` counts the passes
    and their CPU seconds); the collector runs again once the application is imported."""
    report, _ = start(tmp_path)
    assert report["code"] == 0
    assert report["collector"] == {"bot.app": False, "exit": True}


# What a sweep against a real helpdesk and model must not have imported when its first turn
# starts (warm: database at head, knowledge base unchanged), because nothing before that turn
# uses it: tool argument validation (jsonschema), the knowledge index (numpy) and its stemmers,
# the offline responder's rules, the HTTP server and the webhook endpoints, python-intercom's
# request types (with pydantic's v1 layer: the first reply or note builds one; listing and
# reading conversations do not).
NOT_BEFORE_FIRST_TURN = (
    "aiohttp.web",
    "alembic",
    "bot.agent.intents",
    "bot.http",
    "bot.knowledge.index",
    "connectors.intercom.webhook",
    "intercom",
    "jsonschema",
    "numpy",
    "pydantic.v1",
    "snowballstemmer",
)
# ... and what it never imports: the model answered every call, no HTTP was served, the
# database was at head (SQLite), one channel is configured, nothing is scheduled, no remote
# knowledge source, embeddings or other model provider is configured, and the store uses
# SQLAlchemy Core only (no ORM). On SQLite every unit of work of a sweep runs over the plain
# driver on a thread (``Database.run_tx``, ``run_read``): SQLAlchemy's asyncio layer, which
# imports the ORM with it, and aiosqlite load only when something awaits statement by statement.
NEVER_IN_A_SWEEP = (
    "aiohttp.web",
    "aiosqlite",
    "alembic",
    "apscheduler",
    "asyncpg",
    "bot.agent.evaluation",
    "bot.agent.intents",
    "bot.agent.simulate",
    "bot.console",
    "bot.http",
    "bot.knowledge.embeddings",
    "bot.knowledge.sources.intercom",
    "bot.knowledge.sources.sitemap",
    "bot.knowledge.vectors",
    "bot.providers.ingram",
    "bot.providers.xai",
    "bot.scheduler",
    "connectors.intercom.webhook",
    "connectors.slack",
    "connectors.web",
    "httpx",
    "pypdf",
    "slack_sdk",
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.orm",
)

TURN_PROBE = """
import json, logging, runpy, sys
report, watched, config = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
seen = {}

class FirstTurn(logging.Handler):
    def emit(self, record):
        if "first_turn" not in seen and record.getMessage().startswith("turn started"):
            seen["first_turn"] = sorted(m for m in watched if m in sys.modules)

logging.getLogger("bot.pipeline.dispatcher").addHandler(FirstTurn())
sys.argv = ["supportbot", "triage", "--once", "--limit", "1", "--config", config]
try:
    runpy.run_module("bot.cli", run_name="__main__")
    code = 0
except SystemExit as stop:
    code = stop.code
seen["end"] = sorted(m for m in watched if m in sys.modules)
with open(report, "w") as out:
    json.dump({"code": code, **seen}, out)
"""


async def start_against(cwd: Path, config: Path) -> dict[str, Any]:
    """One ``triage --once --limit 1`` in a fresh interpreter: which watched modules it had
    imported at its first "turn started" and at its end."""
    report = cwd / "report.json"
    report.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    # The defaults as installed without the ``embeddings`` extra: ``auto`` is keyword-only there.
    env["SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND"] = "none"
    watched = sorted({*NOT_BEFORE_FIRST_TURN, *NEVER_IN_A_SWEEP})
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", TURN_PROBE, str(report), ",".join(watched), str(config)),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert report.exists(), stderr.decode()
    result: dict[str, Any] = json.loads(report.read_text())
    return result


@pytest.mark.timeout(240)
async def test_a_warm_sweep_imports_search_validation_and_fallback_only_when_it_uses_them(
    tmp_path: Path,
) -> None:
    intercom = FakeIntercom()
    await intercom.start()

    def rule(request: RecordedRequest) -> ScriptedReply:
        if request.messages[-1].get("role") == "tool":
            return ScriptedReply.say("Settings → Billing → Export.")
        return ScriptedReply.calls(ScriptedToolCall("USER_INFO_LOOKUP", {"user_id": ""}))

    model = ScriptedModelServer(rule=rule)
    await model.start()
    try:
        for i in range(2):
            contact = intercom.add_contact(f"Customer {i}", company=None)
            intercom.start_conversation(contact, f"<p>How do I export my invoices? ({i})</p>")
        config = tmp_path / "supportbot.toml"
        config.write_text(
            f"""
connectors = ["intercom"]
[database]
url = "sqlite:///{tmp_path / "bot.db"}"
[log]
level = "INFO"
[model]
provider = "openai"
base_url = "{model.url}"
api_key = "test-key"
name = "scripted"
stream = false
[intercom]
token = "{intercom.token}"
base_url = "{intercom.base_url}"
poll_interval_seconds = 0
""",
            encoding="utf-8",
        )
        cold = await start_against(tmp_path, config)  # migrates and indexes
        assert cold["code"] == 0, cold
        warm = await start_against(tmp_path, config)
    finally:
        await model.stop()
        await intercom.close()
    assert warm["code"] == 0, warm
    assert warm["first_turn"] == []
    assert not set(NEVER_IN_A_SWEEP) & set(warm["end"])
    # The turn did search, validate a tool call and reply: the probe sees what the sweep imports.
    assert {"jsonschema", "numpy", "bot.knowledge.index", "intercom"} <= set(warm["end"])
    assert len(model.chat_requests) == 4  # two turns, a lookup and an answer each


def test_the_command_line_imports_no_database_library_before_a_command_needs_one() -> None:
    """``supportbot health`` (the container's health check, every few seconds) and ``config
    check`` use no database: parsing the command line must not import SQLAlchemy."""
    probe = "import sys, bot.cli; print(sorted(m for m in ('sqlalchemy', 'aiosqlite') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
