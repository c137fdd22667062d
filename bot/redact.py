"""Credentials out of whatever supportbot prints or logs.

``mask_url`` is the one way a URL from the settings is shown (``config check``, error lines);
``mask_text`` finds credentials inside free text (log messages, exception text) and is what the
CLI's logging filter runs over every record as a last line of defence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# Database URL schemes (with or without a ``+driver``): SQLAlchemy renders these itself.
_DATABASE_SCHEMES = ("postgresql", "postgres", "sqlite")

# ``scheme://user:password@``: the password runs to the last ``@`` before the host, so an
# unencoded ``@`` inside it is still covered.
_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*):(?P<password>[^\s/]+)@", re.IGNORECASE)
# ``?token=…`` / ``&api_key=…`` and the like: query values whose name says they are a secret.
_SECRET_QUERY = re.compile(
    r"(?P<head>[?&][\w.-]*(?:token|key|secret|password|passwd|pwd|sig|signature|auth|credential)"
    r"[\w.-]*=)[^&\s#'\"]+",
    re.IGNORECASE,
)


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords, secret-looking query values and the given ``secrets``
    (exact values, e.g. the configured tokens) replaced by ``***``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['head']}{MASK}", text)


def mask_url(url: str) -> str:
    """``url`` fit to print: no password, no secret query values; for a URL that is not a
    database URL a lone user name goes too (``https://TOKEN@host`` is how some tokens travel)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    if parts.scheme.split("+", 1)[0] in _DATABASE_SCHEMES:
        # SQLAlchemy only when a database URL is shown: logging (which imports this module)
        # must not cost a command that opens no database its import.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            rendered = make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            return mask_text(url)
        return mask_text(rendered)
    if "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        user = parts.username if parts.password is not None else None
        userinfo = f"{user}:{MASK}" if user else MASK
        parts = parts._replace(netloc=f"{userinfo}@{host}")
    return mask_text(urlunsplit(parts))


def database_password(url: str) -> str | None:
    """The password in a database URL, so the logging filter can mask it wherever it shows."""
    if "@" not in url:
        return None  # no user info, no password (SQLite): no need to import SQLAlchemy
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except ArgumentError:
        return None
