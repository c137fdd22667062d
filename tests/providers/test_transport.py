"""The HTTP side the providers share: lines from streamed bytes, frames from lines, and the
client's URL joining and lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from yarl import URL

from bot.providers.transport import (
    Frame,
    LineSplitter,
    ProviderHTTP,
    iter_frames,
    proxy_from_env,
)
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply

# SSE with CRLF, LF and lone-CR line ends, multi-byte characters, NDJSON, no final line end.
BODY = (
    'data: {"text": "Grüße 👋"}\r\n\r\n'
    "event: run.completed\r"
    "data: {}\n\n"
    '{"ndjson": "ça va"}\n'
    "last line"
)
LINES = [
    'data: {"text": "Grüße 👋"}',
    "",
    "event: run.completed",
    "data: {}",
    "",
    '{"ndjson": "ça va"}',
    "last line",
]


def split(pieces: list[bytes]) -> list[str]:
    splitter = LineSplitter()
    lines: list[str] = []
    for piece in pieces:
        lines += splitter.feed(piece)
    return lines + splitter.flush()


def test_lines_come_out_whole_wherever_the_body_is_cut() -> None:
    raw = BODY.encode()
    for cut in range(len(raw) + 1):
        assert split([raw[:cut], raw[cut:]]) == LINES, f"cut at byte {cut}"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_lines_come_out_whole_from_tiny_pieces(size: int) -> None:
    raw = BODY.encode()
    assert split([raw[i : i + size] for i in range(0, len(raw), size)]) == LINES


def test_a_line_far_longer_than_a_read_buffer() -> None:
    line = 'data: {"arguments": "' + "é" * 150_000 + '"}'  # 300 KB of UTF-8
    raw = (line + "\n\ndata: [DONE]\n\n").encode()
    pieces = [raw[i : i + 1000] for i in range(0, len(raw), 1000)]
    assert split(pieces) == [line, "", "data: [DONE]", ""]


def test_undecodable_bytes_become_replacement_characters() -> None:
    assert split([b"ok \xff\n", b"cut \xe2\x82"]) == ["ok \ufffd", "cut \ufffd"]


def test_a_body_ending_in_a_line_end_has_no_extra_line() -> None:
    assert split([b"one\r"]) == ["one"]
    assert split([b"one\r\n"]) == ["one"]
    assert split([b""]) == []


async def test_frames_from_lines() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in [
            ": keep-alive",
            "event: message.delta",
            'data: {"a":',
            "data: 1}",
            "",
            '{"b": 2}',
            "data: [DONE]",
        ]:
            yield line

    frames = [frame async for frame in iter_frames(lines())]
    assert frames == [
        Frame("message.delta", '{"a":\n1}'),
        Frame(None, '{"b": 2}'),
        Frame(None, "[DONE]"),
    ]


@pytest.mark.parametrize(
    "base_url,path,url",
    [
        (
            "https://api.openai.com/v1",
            "chat/completions",
            "https://api.openai.com/v1/chat/completions",
        ),
        (
            "http://127.0.0.1:8080/v1/",
            "chat/completions",
            "http://127.0.0.1:8080/v1/chat/completions",
        ),
        ("https://api.x.ai", "v1/support-agent/chat", "https://api.x.ai/v1/support-agent/chat"),
        ("https://ingram.example/api", "/v1/smiths", "https://ingram.example/api/v1/smiths"),
    ],
)
def test_paths_are_appended_to_the_base_url(base_url: str, path: str, url: str) -> None:
    client = ProviderHTTP(provider="p", base_url=base_url, api_key=None, timeout_seconds=5)
    assert client.url(path) == URL(url)


def test_no_session_before_the_first_request() -> None:
    # Made outside any event loop and never used: nothing to warn about, nothing to close.
    client = ProviderHTTP(
        provider="p", base_url="http://127.0.0.1:9", api_key="k", timeout_seconds=5
    )
    assert client._session is None
    assert client.headers["authorization"] == "Bearer k"
    assert client.headers["content-type"] == "application/json"


async def test_a_closed_client_refuses_requests() -> None:
    client = ProviderHTTP(
        provider="p", base_url="http://127.0.0.1:9", api_key=None, timeout_seconds=5
    )
    await client.aclose()
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.request("GET", "models")


def use_proxies(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_the_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    use_proxies(
        monkeypatch,
        HTTPS_PROXY="http://ops:s3cret@proxy.example:3128",
        HTTP_PROXY="plain.example:8080",
        NO_PROXY="internal.example",
    )
    assert proxy_from_env(URL("https://api.openai.com/v1/")) == URL(
        "http://ops:s3cret@proxy.example:3128"
    )
    assert proxy_from_env(URL("http://vllm.example/v1/")) == URL("http://plain.example:8080")
    assert proxy_from_env(URL("http://internal.example/v1/")) is None
    use_proxies(monkeypatch, ALL_PROXY="http://any.example:3128")
    assert proxy_from_env(URL("https://api.openai.com/v1/")) == URL("http://any.example:3128")
    use_proxies(monkeypatch)
    assert proxy_from_env(URL("https://api.openai.com/v1/")) is None


async def test_requests_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, model_server: ScriptedModelServer
) -> None:
    # The fake serves the absolute-form request a plain HTTP proxy gets.
    proxy = model_server.origin.replace("http://", "http://ops:s3cret@")
    use_proxies(monkeypatch, HTTP_PROXY=proxy)
    model_server.enqueue(ScriptedReply.say("through the proxy"))
    client = ProviderHTTP(
        provider="p", base_url="http://model.invalid/v1", api_key=None, timeout_seconds=5
    )
    try:
        answer = await client.request(
            "POST", "chat/completions", json={"model": "m", "messages": [], "stream": False}
        )
    finally:
        await client.aclose()
    assert b"through the proxy" in answer.body
    (sent,) = model_server.chat_requests
    assert sent.header("Host") == "model.invalid"
    assert sent.header("Proxy-Authorization") == "Basic b3BzOnMzY3JldA=="  # ops:s3cret
