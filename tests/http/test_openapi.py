"""Responses match the OpenAPI document's schemas (JSON Schema 2020-12 inside OpenAPI 3.1)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from bot.http.openapi import openapi_document
from tests.http.harness import ask, json_call, running, session


def _check(document: dict[str, Any], path: str, method: str, body: Any) -> None:
    response = document["paths"][path][method]["responses"]["200"]
    schema = response["content"]["application/json"]["schema"]
    # ``#/components/…`` references resolve against the root of the schema being checked.
    jsonschema.Draft202012Validator(
        {**schema, "components": document["components"]}
    ).validate(body)


async def test_responses_match_the_document(sqlite_url: str) -> None:
    document = openapi_document()
    async with running(sqlite_url) as daemon, daemon.client() as visitor:
        me = await session(visitor)
        conversation = await json_call(visitor, "POST", "/v1/conversations", json={"title": "t"})
        _check(document, "/v1/conversations", "post", conversation)
        answer = await ask(visitor, conversation["id"], "reset my password")
        _check(document, "/v1/conversations", "get",
               await json_call(visitor, "GET", "/v1/conversations"))
        items = await json_call(visitor, "GET", f"/v1/conversations/{conversation['id']}/items")
        _check(document, "/v1/conversations/{id}/items", "get", items)
        _check(document, "/v1/conversations/{id}/items/{item_id}", "get",
               await json_call(visitor, "GET", f"/v1/conversations/{conversation['id']}/items/"
                                               f"{items['data'][0]['id']}"))
        _check(document, "/v1/responses", "post",
               await json_call(visitor, "POST", "/v1/responses",
                               json={"conversation": conversation["id"], "input": "and 2FA?"}))
        async with daemon.admin() as admin:
            _check(document, "/v1/smiths", "get", await json_call(admin, "GET", "/v1/smiths"))
            _check(document, "/v1/runs/{id}", "get",
                   await json_call(admin, "GET", f"/v1/runs/{answer['run_id']}"))
            _check(document, "/v1/threads", "get", await json_call(admin, "GET", "/v1/threads"))
            _check(document, "/v1/smiths/{id}", "delete",
                   await json_call(admin, "DELETE", f"/v1/smiths/{me['smith_id']}"))


def test_a_wrong_shape_is_caught() -> None:
    with pytest.raises(jsonschema.ValidationError):
        _check(openapi_document(), "/v1/conversations", "post", {"id": "cnv_1", "object": "thread"})
