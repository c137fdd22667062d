"""Credentials out of printed URLs and free text."""

from __future__ import annotations

import pytest

from bot.redact import database_password, mask_text, mask_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+asyncpg://bot:s3cret@db:5432/support", "postgresql+asyncpg://bot:***@db:5432/support"),
        ("postgresql://bot:p%40ss@db/support", "postgresql://bot:***@db/support"),
        ("postgresql+asyncpg://bot@db/support", "postgresql+asyncpg://bot@db/support"),
        ("postgresql+asyncpg://db/support?password=s3cret", "postgresql+asyncpg://db/support?password=***"),
        ("sqlite+aiosqlite:///./supportbot.db", "sqlite+aiosqlite:///./supportbot.db"),
        ("http://proxyuser:proxy-pw@proxy.internal:3128", "http://proxyuser:***@proxy.internal:3128"),
        ("https://sk-live-token@models.example/v1", "https://***@models.example/v1"),
        ("https://api.example/v1?api_key=abc&page=2", "https://api.example/v1?api_key=***&page=2"),
        ("https://hooks.example/x?sig=abc&Token=def", "https://hooks.example/x?sig=***&Token=***"),
        ("https://slack.com/api/", "https://slack.com/api/"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_mask_text_finds_credentials_inside_sentences() -> None:
    text = (
        "connect to postgresql://bot:p@ss@db:5432/support failed; "
        "retrying https://api.example/v1/x?access_token=abc123 with key tok-configured-1"
    )
    masked = mask_text(text, secrets=["tok-configured-1"])
    assert masked == (
        "connect to postgresql://bot:***@db:5432/support failed; "
        "retrying https://api.example/v1/x?access_token=*** with key ***"
    )


def test_database_password() -> None:
    assert database_password("postgresql+asyncpg://bot:p%40ss@db/support") == "p@ss"
    assert database_password("sqlite+aiosqlite:///./supportbot.db") is None
