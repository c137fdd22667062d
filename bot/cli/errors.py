"""Ordinary mistakes (a database behind or unreachable, a port in use, a name that does not
exist) turned into one line naming the cause and the fix; anything else is a bug."""

from __future__ import annotations

import errno
from collections.abc import Callable

from bot.config import ConfigError, Settings
from bot.redact import mask_url

# -- ordinary mistakes: one line naming the cause and the fix, exit 2 ---------------------------
#
# Commands let these propagate; ``main`` turns them into that line. Anything not recognised here
# is a bug and keeps its traceback.


def _plain(exc: Exception, settings: Settings) -> str | None:
    """The exception's own message is the line (SchemaBehind's already says to run `db upgrade`)."""
    return str(exc)


def _os_error(exc: Exception, settings: Settings) -> str | None:
    assert isinstance(exc, OSError)
    where = f"port {settings.http.port} on {settings.http.host}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is in use: stop the other process or set http.port"
    if exc.errno == errno.EACCES and _raised_in(exc, "aiohttp", "asyncio"):
        return f"not allowed to listen on {where}: choose a port above 1023 (http.port)"
    if exc.errno == errno.EADDRNOTAVAIL and _raised_in(exc, "aiohttp", "asyncio"):
        return f"{settings.http.host} is not an address of this machine: fix http.host"
    if _raised_in(exc, "sqlalchemy", "asyncpg", "aiosqlite"):
        # The drivers let socket errors through untranslated: where it was raised is what says
        # that it was the database that could not be reached.
        return _database_unusable(settings, str(exc) or type(exc).__name__)
    if exc.filename:
        # A file or folder named on the command line or in the settings (``--json PATH``).
        return f"{exc.filename}: {exc.strerror or exc}: check the path"
    return None


# SQLSTATE classes that mean "could not connect or log in", not "this statement was wrong":
# connection exception, invalid authorization, no such database, insufficient resources,
# operator intervention (shutting down, cannot connect now).
_CONNECTION_SQLSTATES = ("08", "28", "3D", "53", "57")


def _database_error(exc: Exception, settings: Settings) -> str | None:
    from sqlalchemy.exc import DBAPIError, OperationalError

    assert isinstance(exc, DBAPIError)
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    # OperationalError is the DB-API's "not the program's fault" (unreachable, cannot open the
    # file, locked); other DBAPI errors are the statement's, i.e. bugs, unless the SQLSTATE says
    # the connection failed. Only the driver's own message: str(exc) would add the statement and
    # its parameters, which can hold customer data.
    if isinstance(exc, OperationalError) or sqlstate.startswith(_CONNECTION_SQLSTATES):
        return _database_unusable(settings, str(exc.orig).strip().splitlines()[0])
    return None


def _database_unusable(settings: Settings, reason: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(settings.database.url)
    if url.get_backend_name() == "sqlite":
        return f"the SQLite database {url.database} cannot be opened ({reason}): check database.url"
    return (
        f"cannot use the database at {mask_url(settings.database.url)} ({reason}): "
        f"check that it is running and that database.url is right"
    )


def _raised_in(exc: BaseException, *packages: str) -> bool:
    """Whether ``exc`` passed through code of one of ``packages`` on its way up."""
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in packages:
            return True
        tb = tb.tb_next
    return False


def _explainers() -> list[tuple[type[Exception], Callable[[Exception, Settings], str | None]]]:
    # Imported when a command failed, not when it starts: ``health`` and ``config check``
    # use no database, and SQLAlchemy is a fifth of a second of CPU to import.
    from sqlalchemy.exc import DBAPIError

    from bot.domain import NotFound
    from bot.store.database import DatabaseUnavailable
    from bot.store.migrate import SchemaBehind

    return [
        (DatabaseUnavailable, _plain),
        (SchemaBehind, _plain),
        (NotFound, _plain),
        (ConfigError, _plain),
        (DBAPIError, _database_error),
        (OSError, _os_error),
    ]


def explain(exc: Exception, settings: Settings) -> str | None:
    """The one line for an ordinary mistake (a database behind or unreachable, a port in use,
    a name that does not exist); None for anything else, which is a bug."""
    if isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        return explain(exc.exceptions[0], settings)
    for kind, describe in _explainers():
        if isinstance(exc, kind):
            return describe(exc, settings)
    return None
