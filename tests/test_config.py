"""Settings: file + env precedence, clear errors naming key and file, secrets masked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, load_settings, masked, secret_values

ROOT = Path(__file__).parents[1]


def test_embedded_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.database.url == "sqlite+aiosqlite:///./supportbot.db"
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8080)
    assert settings.model.provider == "offline"
    assert settings.admin.token is None
    assert not settings.intercom.enabled and not settings.slack.enabled
    assert settings.knowledge.paths[0].is_dir()


def test_env_overrides_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "supportbot.toml"
    config.write_text('[http]\nport = 9000\n[slack]\nsupport_channels = ["C1"]\n')
    monkeypatch.setenv("SUPPORTBOT_HTTP__PORT", "9100")
    monkeypatch.setenv("SUPPORTBOT_SLACK__SUPPORT_CHANNELS", '["C2", "C3"]')
    monkeypatch.setenv("SUPPORTBOT_DATABASE__URL", "postgresql://postgres@127.0.0.1:5432/test")
    settings = load_settings(config)
    assert settings.http.port == 9100
    assert settings.slack.support_channels == ["C2", "C3"]
    assert settings.database.url == "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def test_file_found_through_env_and_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "supportbot.toml").write_text("[http]\nport = 7001\n")
    other = tmp_path / "other.toml"
    other.write_text("[http]\nport = 7002\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().http.port == 7001
    monkeypatch.setenv("SUPPORTBOT_CONFIG", str(other))
    assert load_settings().http.port == 7002


def test_secrets_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SUPPORTBOT_ADMIN__TOKEN").write_text("from-a-file\n")
    (secrets / "SUPPORTBOT_INTERCOM__CLIENT_SECRET").write_text("hmac-key")
    monkeypatch.setenv("SUPPORTBOT_SECRETS_DIR", str(secrets))
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.admin.token is not None
    assert settings.admin.token.get_secret_value() == "from-a-file"  # trailing newline dropped
    assert settings.intercom.client_secret is not None
    assert settings.intercom.client_secret.get_secret_value() == "hmac-key"
    # The environment still wins over a file.
    monkeypatch.setenv("SUPPORTBOT_ADMIN__TOKEN", "from-env")
    token = load_settings().admin.token
    assert token is not None and token.get_secret_value() == "from-env"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[http]\nport = 'eighty'\n", "http.port: Input should be a valid integer"),
        ("[http]\nprot = 8080\n", "http.prot: unknown setting"),
        ("[model]\nprovider = 'gpt'\n", "model.provider: Input should be 'offline'"),
        ("[database]\nurl = 'mysql://x'\n", "database.url: Value error, expected a sqlite://"),
        ("[intercom]\nescalation_assignee = 'bob'\n", "intercom.escalation_assignee"),
        ("[http\nport = 1\n", "not valid TOML"),
        ("[[agents]]\nslug='a'\nname='A'\n[[agents]]\nslug='a'\nname='B'\n", "agent slugs must be unique"),
    ],
)
def test_errors_name_the_file_the_key_and_the_reason(
    tmp_path: Path, content: str, expected: str
) -> None:
    config = tmp_path / "broken.toml"
    config.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert str(config) in message
    assert expected in message


def test_env_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUPPORTBOT_PIPELINE__CONCURRENCY", "0")
    with pytest.raises(ConfigError, match="env SUPPORTBOT_PIPELINE__CONCURRENCY: pipeline.concurrency"):
        load_settings()


def test_masked_hides_every_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUPPORTBOT_INTERCOM__TOKEN", "tok-123-secret")
    monkeypatch.setenv("SUPPORTBOT_MODEL__API_KEY", "sk-very-secret")
    monkeypatch.setenv("SUPPORTBOT_ADMIN__TOKEN", "admin-secret")
    text = json.dumps(masked(load_settings()), default=str)
    for secret in ("tok-123-secret", "sk-very-secret", "admin-secret"):
        assert secret not in text
    assert '"token": "***"' in text


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=60, check=False,
    )


def test_config_check_passes_on_the_example_file() -> None:
    result = _cli("config", "check", "--config", str(ROOT / "config.example.toml"))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stderr
    assert json.loads(result.stdout)["http"]["port"] == 8080


def test_config_check_on_a_broken_file_says_why_without_a_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[pipeline]\nconcurrency = -1\n")
    result = _cli("config", "check", "--config", str(broken))
    assert result.returncode == 2
    assert f"config error in {broken}: pipeline.concurrency" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_masks_secrets(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "SUPPORTBOT_SLACK__BOT_TOKEN": "xoxb-do-not-print"}
    result = _cli("config", "check", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "xoxb-do-not-print" not in result.stdout + result.stderr
    assert json.loads(result.stdout)["slack"]["bot_token"] == "***"


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        ("SUPPORTBOT_SLACK__SUPPORT_CHANNELS", "C0SUPPORT", lambda s: s.slack.support_channels == ["C0SUPPORT"]),
        ("SUPPORTBOT_SLACK__SUPPORT_CHANNELS", " C01, C02 ,", lambda s: s.slack.support_channels == ["C01", "C02"]),
        ("SUPPORTBOT_SLACK__SUPPORT_CHANNELS", '["C01", "C02"]', lambda s: s.slack.support_channels == ["C01", "C02"]),
        ("SUPPORTBOT_SLACK__SUPPORT_CHANNELS", "", lambda s: s.slack.support_channels == []),
        ("SUPPORTBOT_SLACK__SUPPORT_USERS", "U1,U2", lambda s: s.slack.support_users == ["U1", "U2"]),
        ("SUPPORTBOT_WEB__UPLOAD_TYPES", "image/png", lambda s: s.web.upload_types == ["image/png"]),
        ("SUPPORTBOT_OFFLINE__GREETING_PHRASES", "hi,yo", lambda s: s.offline.greeting_phrases == ["hi", "yo"]),
        ("SUPPORTBOT_MODEL__FALLBACK", "openai,offline", lambda s: s.model.fallback == ["openai", "offline"]),
        ("SUPPORTBOT_KNOWLEDGE__PATHS", "docs,faq", lambda s: s.knowledge.paths == [Path("docs"), Path("faq")]),
        ("SUPPORTBOT_TRIAGE__CHANNELS", "intercom", lambda s: s.triage.channels == ["intercom"]),
        ("SUPPORTBOT_TRIAGE__CHANNELS", '["intercom"]', lambda s: s.triage.channels == ["intercom"]),
        ("SUPPORTBOT_CONNECTORS", "web,slack", lambda s: s.connectors == ["web", "slack"]),
        ("SUPPORTBOT_CONNECTORS", '["web"]', lambda s: s.connectors == ["web"]),
    ],
)
def test_list_settings_from_the_environment_take_json_or_commas(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, read: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    assert read(load_settings())


def test_a_list_setting_still_validates_its_items(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUPPORTBOT_MODEL__FALLBACK", "offline,gpt")
    with pytest.raises(ConfigError, match="env SUPPORTBOT_MODEL__FALLBACK: model.fallback.1"):
        load_settings()


def test_an_env_value_no_source_can_read_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUPPORTBOT_MODEL__ENDPOINTS", "not json")
    with pytest.raises(ConfigError, match='error parsing value for field "model"'):
        load_settings()


def test_the_database_password_stays_out_of_reprs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUPPORTBOT_DATABASE__URL", "postgresql://bot:Repr-Pw-1@db:5432/support")
    settings = load_settings()
    # The engine gets the real URL …
    assert str(settings.database.url) == "postgresql+asyncpg://bot:Repr-Pw-1@db:5432/support"
    assert settings.database.url == "postgresql+asyncpg://bot:Repr-Pw-1@db:5432/support"
    # … everything that shows the settings does not.
    for shown in (repr(settings), repr(settings.database), repr(settings.database.url)):
        assert "Repr-Pw-1" not in shown and "bot:***@db" in shown
    assert "Repr-Pw-1" not in json.dumps(masked(settings))


def test_secret_values_are_what_the_log_filter_masks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUPPORTBOT_DATABASE__URL", "postgresql://bot:Db-Pw-1@db/support")
    monkeypatch.setenv("SUPPORTBOT_SLACK__BOT_TOKEN", "xoxb-token-1")
    monkeypatch.setenv("SUPPORTBOT_MODEL__ENDPOINTS__OPENAI__API_KEY", "sk-fallback-1")
    assert secret_values(load_settings()) == {"Db-Pw-1", "xoxb-token-1", "sk-fallback-1"}
