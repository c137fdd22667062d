"""What ``supportbot triage --once`` pays for before its first turn, counted rather than timed.

Each start runs the real command in a fresh interpreter (this test process has imported
everything already) with the embedded defaults: SQLite in the working directory, the offline
responder, the bundled knowledge base. The timing is printed by ``bench/triage.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Libraries a one-off sweep with the defaults has no use for before its first search: the HTTP
# server, unconfigured channels, the migration machinery on a database already at head, the
# schedulers, the console, document parsers for formats it does not read, numpy.
NOT_IMPORTED = (
    "alembic",
    "apscheduler",
    "bot.console",
    "bot.http.server",
    "bot.scheduler",
    "connectors.intercom.connector",
    "connectors.slack.connector",
    "jinja2",
    "numpy",
    "pypdf",
    "slack_bolt",
)

PROBE = """
import json, runpy, sys
report, watched = sys.argv[1], sys.argv[2].split(",")
sys.argv = ["supportbot", "triage", "--once", "--since", ""]
try:
    runpy.run_module("bot.cli", run_name="__main__")
    code = 0
except SystemExit as stop:
    code = stop.code
with open(report, "w") as out:
    json.dump({"code": code, "imported": sorted(m for m in watched if m in sys.modules)}, out)
"""


def start(cwd: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One ``triage --once`` in a fresh interpreter: its report and its JSON log records."""
    report = cwd / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
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
