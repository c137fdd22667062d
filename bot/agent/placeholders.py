"""``{placeholders}`` in the templates of HTTP tools (``[[tools]]``) and of ``[user_info] url``.

Two kinds, never confused:

- ``{smith.…}`` — a field of the turn's own smith, filled by the daemon from what is proven about
  the customer (a signed identity's claims, the helpdesk's own record): ``{smith.id}``,
  ``{smith.external_id}`` (``web:u_1``), ``{smith.external_id_local}`` (``u_1``),
  ``{smith.customer_id}`` and ``{smith.metadata.KEY}``. These are the only way a template may
  select a customer's data.
- ``{name}`` — a model argument of that name (URL only, for HTTP tools).

A template is filled in one pass, so a value that itself looks like ``{smith.customer_id}`` is
sent as written and never expanded. A smith field the customer does not have (no customer id,
no such metadata key) stops the call: an empty value could select someone else's data, or all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bot.domain import Smith

PLACEHOLDER = re.compile(r"\{([^{}\s]+)\}")
SMITH = "smith"
SMITH_FIELDS = ("id", "external_id", "external_id_local", "customer_id")
METADATA_PREFIX = "metadata."


class MissingSmithField(Exception):
    """The template names a smith field this customer has no value for."""


def names(template: str) -> list[str]:
    """Every placeholder name in ``template``, in order."""
    return PLACEHOLDER.findall(template)


def is_smith_field(name: str) -> bool:
    return name == SMITH or name.startswith(SMITH + ".")


def check_smith_field(name: str) -> None:
    """Raise ``ValueError`` for a ``{smith.…}`` placeholder that names no smith field."""
    field = name[len(SMITH) + 1:]
    if field in SMITH_FIELDS:
        return
    if field.startswith(METADATA_PREFIX) and len(field) > len(METADATA_PREFIX):
        return
    known = ", ".join("{smith." + f + "}" for f in SMITH_FIELDS)
    raise ValueError(f"{{{name}}} is not a smith field (known: {known}, {{smith.metadata.KEY}})")


def shadowed_name(name: str) -> str:
    """The bare name a ``{smith.…}`` field is known by (``customer_id``, ``email``): a model
    argument by that name would look like a way to choose it."""
    return name.rsplit(".", 1)[-1]


def smith_value(name: str, smith: Smith) -> str:
    """The value of ``{smith.…}`` field ``name`` for ``smith``; ``MissingSmithField`` when it
    has none."""
    field = name[len(SMITH) + 1:]
    external = smith.external_id or ""
    value: Any
    if field == "id":
        value = smith.id
    elif field == "external_id":
        value = external
    elif field == "external_id_local":
        value = external.split(":", 1)[1] if ":" in external else external
    elif field == "customer_id":
        value = smith.customer_id
    elif field.startswith(METADATA_PREFIX):
        value = smith.metadata.get(field[len(METADATA_PREFIX):])
    else:
        raise MissingSmithField(f"{{{name}}} is not a smith field")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MissingSmithField(f"this customer has no {field}")
    return value if isinstance(value, str) else str(value)


def fill(
    template: str,
    smith: Smith,
    *,
    arguments: Mapping[str, Any] | None = None,
    encode: Callable[[str], str] = str,
    aliases: Mapping[str, str] | None = None,
) -> tuple[str, set[str]]:
    """``template`` with its placeholders filled (each value through ``encode``), and the names
    of the arguments it used. ``aliases`` maps a legacy bare name to a smith field
    (``customer_id`` → ``smith.customer_id``). A placeholder with no value is left as written."""
    used: set[str] = set()

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if aliases and name in aliases:
            name = aliases[name]
        if is_smith_field(name):
            return encode(smith_value(name, smith))
        if arguments is not None and name in arguments:
            used.add(name)
            value = arguments[name]
            return encode(str(value))
        return match.group(0)

    return PLACEHOLDER.sub(one, template), used


def smith_names(templates: Iterable[str]) -> set[str]:
    """The ``{smith.…}`` placeholders used across ``templates``."""
    return {n for t in templates for n in names(t) if is_smith_field(n)}

