"""``supportbot kb sync / list / show / remove`` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.intercom import FakeIntercom


def _cli(db_url: str, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SUPPORTBOT_DATABASE__URL": db_url,
                   "SUPPORTBOT_LOG__LEVEL": "WARNING", **env}
    environment.pop("SUPPORTBOT_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        check=False, cwd=cwd, env=environment, capture_output=True, text=True, timeout=60,
    )


def test_kb_sync_list_show_and_remove(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\nRefunds arrive within 5 days.\n")
    (docs / "README.md").write_text("# Internal readme\n\nDeploy with make ship.\n")
    sources = json.dumps([{"name": "handbook", "kind": "files", "paths": [str(docs)]}])

    synced = _cli(db_url, tmp_path, "kb", "sync", "--json",
                  SUPPORTBOT_KNOWLEDGE__SOURCES=sources)
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout) == {"sources": [{
        "source": "handbook", "kind": "files", "added": 2, "updated": 0, "removed": 0,
        "unchanged": 0, "requests": 0, "error": None,
    }]}
    again = _cli(db_url, tmp_path, "kb", "sync", "--source", "handbook",
                 SUPPORTBOT_KNOWLEDGE__SOURCES=sources)
    assert again.stdout.strip() == "handbook (files): added 0, updated 0, removed 0, unchanged 2"
    unknown = _cli(db_url, tmp_path, "kb", "sync", "--source", "nope",
                   SUPPORTBOT_KNOWLEDGE__SOURCES=sources)
    assert unknown.returncode == 2 and "configured: handbook" in unknown.stderr

    listed = json.loads(_cli(db_url, tmp_path, "kb", "list", "--json").stdout)["documents"]
    by_title = {d["title"]: d for d in listed}
    assert set(by_title) == {"Refunds", "Internal readme"}
    assert by_title["Refunds"]["source"] == "handbook" and by_title["Refunds"]["chunks"] == 1

    shown = _cli(db_url, tmp_path, "kb", "show", by_title["Refunds"]["id"])
    assert shown.returncode == 0 and "Refunds arrive within 5 days." in shown.stdout

    removed = _cli(db_url, tmp_path, "kb", "remove", "README.md")  # by its citation
    assert removed.returncode == 0, removed.stderr
    assert "returns at its next sync" in removed.stdout
    listed = json.loads(_cli(db_url, tmp_path, "kb", "list", "--json").stdout)["documents"]
    assert [d["title"] for d in listed] == ["Refunds"]
    found = _cli(db_url, tmp_path, "kb", "search", "how do I deploy")
    assert "make ship" not in found.stdout
    missing = _cli(db_url, tmp_path, "kb", "remove", "README.md")
    assert missing.returncode == 1 and "no document" in missing.stderr


async def test_kb_sync_reads_the_help_center_and_kb_list_files_it_under_its_collection(
    tmp_path: Path, fake_intercom: FakeIntercom
) -> None:
    """``kb sync`` runs in the foreground (its process ends with the sync done); ``kb list``
    shows each article under its "Collection › Section"."""
    okta = fake_intercom.add_collection("Okta", parent_id=fake_intercom.collection_id)
    fake_intercom.add_article("SAML setup", "<p>Create a SAML application in Okta.</p>",
                              parent_id=okta)
    fake_intercom.add_article("Loose notes", "<p>Not in any collection.</p>", standalone=True)
    env = {
        "SUPPORTBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "SUPPORTBOT_LOG__LEVEL": "WARNING",
        "SUPPORTBOT_INTERCOM__TOKEN": fake_intercom.token,
        "SUPPORTBOT_INTERCOM__BASE_URL": fake_intercom.base_url,
        "SUPPORTBOT_KNOWLEDGE__SOURCES": json.dumps([{"name": "help", "kind": "intercom"}]),
    }

    async def cli(*args: str) -> tuple[int, str]:
        environment = {**os.environ, **env}
        environment.pop("SUPPORTBOT_CONFIG", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", *args, cwd=tmp_path, env=environment,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return process.returncode, out.decode() + err.decode()

    code, out = await cli("kb", "sync", "--json")
    assert code == 0, out
    (report,) = json.loads(out)["sources"]
    assert (report["added"], report["error"]) == (1, None)
    code, out = await cli("kb", "list")
    assert code == 0 and "help  General › Okta › SAML setup  (https://" in out, out
    assert "Loose notes" not in out
    listed = json.loads((await cli("kb", "list", "--json"))[1])["documents"]
    assert [d["section"] for d in listed] == ["General › Okta"]
