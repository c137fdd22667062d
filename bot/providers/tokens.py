"""Counting a call's tokens with the serving model's own tokenizer, when the server reported
no usage.

Servers that ignore ``stream_options`` (llama-cpp-python, measured) answer a streamed call with
no usage at all. No tokenizer can run here on its own for those models: ``tiktoken`` fetches
its encodings from the network at run time and covers only OpenAI's models (whose API does
report usage); ``tokenizers`` needs each model's ``tokenizer.json``, which no package ships for
the models people serve. The server itself knows its model's tokenizer, though: llama-cpp-python
counts at ``POST /extras/tokenize/count``, llama.cpp's own server and vLLM tokenize at
``POST /tokenize``. So the text that went each way is counted there, once per call, and the
usage is still marked ``estimated``: the chat template's own tokens are approximated
(``TOKENS_PER_MESSAGE``) and the output is counted from the text as received. A server with
neither route is asked once; after that the character estimate (``base.estimate_usage``) is used.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from bot.domain import Usage
from bot.providers.base import TOKENS_PER_MESSAGE, ModelRequest, ModelResponse, ProviderError
from bot.providers.transport import ProviderHTTP

log = logging.getLogger(__name__)

# A count is bookkeeping: it must never hold up a turn whose answer is already written.
COUNT_TIMEOUT_SECONDS = 2.0
# (path under the server's root, body keys for the text) in the order they are tried.
ROUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("extras/tokenize/count", ("input",)),  # llama-cpp-python
    ("tokenize", ("content", "prompt")),  # llama.cpp's server ("content"), vLLM ("prompt")
)


def _root(base_url: str) -> str:
    """The server's root: the tokenizer routes sit beside ``/v1``, not under it."""
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


def _count_of(answer: Any) -> int | None:
    if isinstance(answer, dict):
        if isinstance(answer.get("count"), int) and not isinstance(answer["count"], bool):
            return int(answer["count"])
        if isinstance(answer.get("tokens"), list):
            return len(answer["tokens"])
    return None


class ServerTokenizer:
    """Asks an OpenAI-compatible server to count tokens with the model it serves."""

    def __init__(self, *, provider: str, base_url: str, api_key: str | None) -> None:
        self._http = ProviderHTTP(
            provider=provider,
            base_url=_root(base_url),
            api_key=api_key,
            timeout_seconds=COUNT_TIMEOUT_SECONDS,
        )
        # None: not found yet; an index into ROUTES once one answered; -1: none does.
        self._route: int | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def usage(
        self, request: ModelRequest, response: ModelResponse, model: str
    ) -> Usage | None:
        """The call's usage counted by the server's tokenizer (marked estimated), or None when
        the server cannot count or did not answer in time."""
        if self._route == -1:
            return None
        sent = [m.content for m in request.messages if m.content]
        sent += [f"{c.name} {c.raw_arguments}" for m in request.messages for c in m.tool_calls]
        if request.tools:
            sent.append(json.dumps(
                [{"name": t.name, "description": t.description, "parameters": t.parameters}
                 for t in request.tools],
                ensure_ascii=False,
            ))
        said = [response.text] + [f"{c.name} {c.raw_arguments}" for c in response.tool_calls]
        try:
            async with asyncio.timeout(COUNT_TIMEOUT_SECONDS * 2):
                counted_in = await self._count("\n".join(sent), model)
                if counted_in is None:
                    return None
                counted_out = await self._count("\n".join(t for t in said if t.strip()), model)
        except TimeoutError:
            return None
        if counted_out is None:
            return None
        overhead = TOKENS_PER_MESSAGE * len(request.messages)
        return Usage(counted_in + overhead, counted_out, estimated=True)

    async def _count(self, text: str, model: str) -> int | None:
        if not text:
            return 0
        routes = range(len(ROUTES)) if self._route is None else (self._route,)
        for index in routes:
            path, keys = ROUTES[index]
            body: dict[str, Any] = {key: text for key in keys}
            body["model"] = model
            try:
                answer = await self._http.request("POST", path, json=body)
                count = _count_of(json.loads(answer.body))
            except (ProviderError, ValueError):
                count = None
            if count is not None:
                self._route = index
                return count
        if self._route is None:
            log.info("%s counts no tokens (no tokenize route); usage it does not report is "
                     "estimated from characters", self._http.provider)
            self._route = -1
        return None
