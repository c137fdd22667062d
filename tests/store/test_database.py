"""A SQLite database that cannot be created where it is configured fails up front, clearly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config import DatabaseSettings
from bot.store.database import Database, DatabaseUnavailable


def test_a_sqlite_file_in_a_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "missing"
    with pytest.raises(DatabaseUnavailable, match=f"the folder {folder} does not exist: create it"):
        Database(DatabaseSettings(url=f"sqlite:///{folder}/supportbot.db"))


def test_a_sqlite_file_in_a_folder_this_user_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run as root, for whom every folder is writable: the answer is what is checked.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path else real_access(path, mode))
    with pytest.raises(DatabaseUnavailable, match=f"cannot write to the folder {tmp_path}: give it write"):
        Database(DatabaseSettings(url=f"sqlite:///{tmp_path}/supportbot.db"))
