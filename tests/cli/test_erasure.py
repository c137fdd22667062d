"""``supportbot smiths erase ID``: refused in a script without ``--yes``, asked at a terminal,
and afterwards nothing of the smith is left in the database."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import cmd_smiths_erase
from bot.config import DatabaseSettings
from bot.store.database import Database
from bot.store.erasure import Erasures
from bot.store.migrate import upgrade
from bot.store.store import NotFound, Store
from tests.conftest import make_settings
from tests.store.test_erasure import dump, footprint


def _cli(db_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUPPORTBOT_DATABASE__URL": db_url}
    env.pop("SUPPORTBOT_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, env=env, check=False,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


async def _populated(db_url: str, who: str) -> tuple[Store, list[str], str]:
    store = Store(Database(DatabaseSettings(url=db_url)))
    await upgrade(store.db.engine)
    victim = await footprint(store, who)
    return store, list(victim.needles), victim.smith_id


async def test_erase_from_a_script_needs_yes(db_url: str, tmp_path: Path) -> None:
    store, needles, smith_id = await _populated(db_url, "ivy")
    try:
        refused = _cli(db_url, tmp_path, "smiths", "erase", smith_id)
        assert refused.returncode == 2
        assert "pass --yes to confirm" in refused.stderr and "Traceback" not in refused.stderr
        assert (await store.get_smith(smith_id)).id == smith_id

        erased = _cli(db_url, tmp_path, "smiths", "erase", smith_id, "--yes")
        assert erased.returncode == 0, erased.stderr
        assert f"erased smith {smith_id}: " in erased.stdout and "1 threads" in erased.stdout
        after = await dump(store)
        assert [n for n in needles if n in after] == []
        (record,) = await Erasures(store.db).list_erasures(smith_id=smith_id)
        assert record.requested_by == "cli" and record.id in erased.stdout

        again = _cli(db_url, tmp_path, "smiths", "erase", smith_id, "--yes")
        assert again.returncode == 2 and f"no smith {smith_id}" in again.stderr
        assert "Traceback" not in again.stderr
    finally:
        await store.db.dispose()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_erase_at_a_terminal_asks_first(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store, needles, smith_id = await _populated(sqlite_url, "jo")
    settings = make_settings(sqlite_url)
    args = argparse.Namespace(smith_id=smith_id, yes=False)
    try:
        monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
        assert await cmd_smiths_erase(args, settings) == 1
        out = capsys.readouterr()
        assert "Erase this smith and all its data for good? [y/N]" in out.out
        assert "not erased" in out.err
        assert (await store.get_smith(smith_id)).id == smith_id

        monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
        assert await cmd_smiths_erase(args, settings) == 0
        assert f"erased smith {smith_id}" in capsys.readouterr().out
        with pytest.raises(NotFound):
            await store.get_smith(smith_id, include_archived=True)
        assert not [n for n in needles if n in await dump(store)]
    finally:
        await store.db.dispose()
