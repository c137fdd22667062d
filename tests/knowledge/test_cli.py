"""``supportbot kb ingest`` and ``supportbot kb search`` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _cli(db_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUPPORTBOT_DATABASE__URL": db_url, "SUPPORTBOT_LOG__LEVEL": "WARNING"}
    env.pop("SUPPORTBOT_CONFIG", None)
    env.pop("SUPPORTBOT_KNOWLEDGE__PATHS", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kb_ingest_and_search(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    # Before anything is indexed: not "no matching passages" but how to index.
    empty = _cli(db_url, tmp_path, "kb", "search", "how do I reset my password?")
    assert empty.returncode == 1 and empty.stdout == ""
    assert "knowledge base is empty" in empty.stderr and "kb ingest" in empty.stderr

    bundled = _cli(db_url, tmp_path, "kb", "ingest")  # no PATH: the configured example KB
    assert bundled.returncode == 0, bundled.stderr
    assert "added 14," in bundled.stdout

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\n## Timing\n\nRefunds arrive within 5 days.\n")
    ingested = _cli(db_url, tmp_path, "kb", "ingest", str(docs))
    assert ingested.returncode == 0, ingested.stderr
    assert ingested.stdout.strip() == (
        "added 1, updated 0, unchanged 0, removed 0, skipped 0 documents; 1 chunks"
    )

    found = _cli(db_url, tmp_path, "kb", "search", "how do I reset my password?", "--limit", "2")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert len(lines) == 4  # two passages: a score line and a snippet line each
    score, rest = lines[0].split("  ", 1)
    assert float(score) > 0.5
    assert rest.startswith("Resetting your password › ")
    assert rest.endswith("(account/resetting-your-password.md)")

    nothing = _cli(db_url, tmp_path, "kb", "search", "what's the weather on mars")
    assert nothing.returncode == 0 and "no matching passages" in nothing.stdout

    missing = _cli(db_url, tmp_path, "kb", "ingest", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
