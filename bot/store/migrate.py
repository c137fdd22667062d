"""Schema migrations: upgrade to head, and tell whether a database is behind.

Alembic is imported only when a migration has to run or the cheap check cannot decide: every
command checks the schema on start, and importing alembic (every dialect's DDL, Mako) costs more
than the rest of that check (``triage --once`` is meant to reach its first turn in < 0.3 s).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.store.schema import is_search_index_object

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

    from bot.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"
# ``revision = "0011"`` / ``down_revision = "0010"`` (or ``None``) as the scripts spell them.
_REVISION_LINE = re.compile(
    r"""^(down_revision|revision)\s*(?::[^=\n]*)?=\s*(?:["']([^"']+)["']|None)\s*$""",
    re.MULTILINE,
)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave the dialect-specific full-text index (migration 0002) out of schema diffs."""
    return not (reflected and compare_to is None and is_search_index_object(name, type_))


class SchemaBehind(RuntimeError):
    """The database is older than this code; ``supportbot db upgrade`` brings it up."""


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    from alembic import command

    def run(connection: Connection) -> None:
        command.upgrade(_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


def scripted_head() -> str | None:
    """The head revision read from the scripts' ``revision``/``down_revision`` lines, without
    alembic; None when that is not one clear head (then alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        script_text = script.read_text("utf-8")
        found = {m.group(1): m.group(2) for m in _REVISION_LINE.finditer(script_text)}
        if "revision" not in found:
            continue  # not a migration script (``__init__.py``)
        revision = found["revision"]
        if revision is None or "down_revision" not in found:
            return None  # spelled in a way this reader does not follow (a tuple, a merge)
        revisions.add(revision)
        if found["down_revision"] is not None:
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _version_rows(conn: Connection) -> list[Any]:
    return list(conn.execute(text("SELECT version_num FROM alembic_version")).all())


async def _stored_revision(db: Database) -> str | None:
    """``alembic_version``'s one row by a plain query; None when it cannot be read."""
    try:
        rows = await db.run_read(_version_rows)
    except DBAPIError:
        return None  # no table yet (an empty database): alembic decides
    return str(rows[0][0]) if len(rows) == 1 else None


async def ensure_current(db: Database, *, auto_upgrade: bool) -> None:
    """Upgrade (embedded SQLite) or refuse to run on a database that is behind.

    A database already at head costs one query (a unit of work: on SQLite no asyncio engine is
    built for it, ``Database.engine``) and a read of the scripts' revision lines; anything else
    goes through alembic's own machinery.
    """
    stored = await _stored_revision(db)
    if stored is not None and stored == scripted_head():
        return
    engine = db.engine
    current = await current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if auto_upgrade:
        await upgrade(engine)
        return
    raise SchemaBehind(
        f"the database schema is at {current or 'nothing (empty database)'}, this supportbot "
        f"needs {head}: run `supportbot db upgrade` first"
    )
