"""What every section shares: the error a bad configuration raises, the frozen section model, a
list setting the environment may give as text, and the small parsers validators use
(durations, origins, header values taken from the environment)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_settings import NoDecode

ENV_PREFIX = "SUPPORTBOT_"


class ConfigError(Exception):
    """A configuration that cannot run; the message names the file, the key and the reason."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _list_from_env(value: Any) -> Any:
    """A list setting given as text (an environment variable): a JSON list, or the plain
    comma-separated form people type (``C0SUPPORT`` or ``C01,C02``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a JSON list ({exc}); a comma-separated list works too") from None
    return [item.strip() for item in text.split(",") if item.strip()]


T = TypeVar("T")
# A list of plain values that the environment may give as JSON or comma-separated. ``NoDecode``
# keeps pydantic-settings from insisting on JSON before ``_list_from_env`` sees the text.
EnvList = Annotated[list[T], NoDecode, BeforeValidator(_list_from_env)]


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


def parse_duration(text: str) -> float | None:
    """Seconds in ``90s``, ``30m``, ``2h``, ``1d``, ``1w`` (or ``1h30m``); None when not one."""
    match = re.fullmatch(r"(?:\s*(\d+(?:\.\d+)?)\s*([smhdw]))+\s*", text.strip().lower())
    if not match or not text.strip():
        return None
    return sum(
        float(amount) * _DURATION_UNITS[unit]
        for amount, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.lower())
    )


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case without a default port; raises ``ValueError`` for
    anything that is not an origin (a path, a wildcard, ``null``)."""
    from yarl import URL

    try:
        url = URL(value.strip())
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not an origin such as https://www.example.com") from None
    if (url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/")
            or url.query_string or url.fragment or url.user is not None):
        raise ValueError(f"{value!r} is not an origin such as https://www.example.com")
    return str(url.origin()).lower()


def env_headers(names: Mapping[str, str], *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Resolve ``{"Header": "ENV_VAR_NAME"}`` into header values, read from the environment when
    they are needed (so a rotated token is picked up); a missing variable raises ``ConfigError``
    naming the variable, never a value."""
    env = os.environ if environ is None else environ
    resolved: dict[str, str] = {}
    for header, variable in names.items():
        value = env.get(variable)
        if value is None:
            raise ConfigError(f"environment variable {variable} (for header {header}) is not set")
        resolved[header] = value
    return resolved
