"""Reading request bodies from the network: bounded in size, JSON bounded in depth and shape.

Every route that takes a body reads it through here, so a malformed one is a 4xx with a reason
(400 malformed, 413 too large, 415 wrong content type) and never reaches code that would raise.
Signed routes read the raw bytes with ``read_body``, check the signature, and only then call
``parse_json``: nothing is parsed for a sender who has not been proven.

What ``parse_json`` refuses, and why:

- nesting deeper than ``MAX_JSON_DEPTH``: the standard parser recurses and raises
  ``RecursionError`` near 1,000 levels, and everything downstream that walks a payload
  (serialisers, schema validators) recurses too;
- ``NaN``/``Infinity`` and numbers that overflow a float: they serialise back as ``NaN``,
  which PostgreSQL's JSON types refuse;
- ``\\u0000`` and unpaired surrogates in strings: PostgreSQL text and JSON refuse the first,
  UTF-8 cannot encode the second;
- bodies that are not UTF-8 (JSON on the wire is UTF-8, RFC 8259 §8.1).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from aiohttp import web

MAX_JSON_DEPTH: Final = 64
_CHUNK: Final = 65_536
# Only a body that spells one of these escapes can hold a NUL or a surrogate once decoded; the
# rest skip the walk over every string.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


class BodyRefused(Exception):
    """A request body we will not take: ``status`` (400, 413, 415), ``reason`` for the caller,
    ``code`` for the API's error object."""

    def __init__(self, status: int, reason: str, code: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code


def too_large(limit: int) -> BodyRefused:
    return BodyRefused(413, f"the body is over {limit} bytes", "body_too_large")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refused (413) past ``limit``: by its Content-Length, to which aiohttp's
    parser holds the body (it reads no byte more), or, without one (chunked), counted as it
    arrives."""
    length = request.content_length
    if length is not None:
        if length > limit:
            raise too_large(limit)
        if length == 0:
            return b""
        # The parser hands over exactly Content-Length bytes (a body cut short is a lost
        # connection, as for a chunked one): one read, not a loop of chunks.
        return await request.content.readexactly(length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def is_json_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type (aiohttp has already dropped the parameters)."""
    kind = content_type.strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]}… does not fit a double")
    return value


# ``json.loads`` with these hooks builds a decoder per call; one serves every call.
_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def parse_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a JSON document from the network; ``BodyRefused(400)`` for anything malformed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyRefused(400, "the body is not UTF-8", "invalid_json") from None
    # Cheap upper bound: a document with fewer brackets than the limit cannot nest deeper.
    deep = text.count("[") + text.count("{") > max_depth
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise BodyRefused(400, f"JSON nested deeper than {max_depth} levels",
                          "json_too_deep") from None
    except ValueError as exc:  # JSONDecodeError, NaN, overflow, int over 4,300 digits
        raise BodyRefused(400, f"malformed JSON: {_short(str(exc))}", "invalid_json") from None
    suspect = _SUSPECT_ESCAPE.search(text) is not None
    if deep or suspect:
        _check_tree(value, max_depth=max_depth, strings=suspect)
    return value


def _check_tree(value: Any, *, max_depth: int, strings: bool) -> None:
    # Iterative, so the check itself cannot overflow the stack it protects.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise BodyRefused(400, f"JSON nested deeper than {max_depth} levels",
                                  "json_too_deep")
            for key, child in item.items():
                if strings:
                    _check_string(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                raise BodyRefused(400, f"JSON nested deeper than {max_depth} levels",
                                  "json_too_deep")
            stack.extend((child, depth + 1) for child in item)
        elif strings and isinstance(item, str):
            _check_string(item)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise BodyRefused(400, "JSON strings may not contain \\u0000", "invalid_json")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BodyRefused(400, "JSON strings may not contain unpaired surrogates",
                          "invalid_json") from None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


async def json_object(request: web.Request, limit: int) -> dict[str, Any] | None:
    """The body of a JSON API request as an object; None when there is no body at all (an
    empty one; ``null`` is a body, and not an object).

    415 unless it is declared JSON, 413 past ``limit``, 400 unless it is one JSON object.
    """
    if not request.body_exists:
        return None
    if not is_json_type(request.content_type):
        raise BodyRefused(415, "send the body as application/json", "unsupported_media_type")
    raw = await read_body(request, limit)
    if not raw:
        return None
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise BodyRefused(400, "the body must be a JSON object", "invalid_json")
    return value
