"""README command 1 as a user runs it: `supportbot serve` comes up, answers /healthz, stops
cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_serve_on_the_embedded_defaults(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "SUPPORTBOT_HTTP__PORT": str(port)}
    env.pop("SUPPORTBOT_CONFIG", None)
    with subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            assert f"http://127.0.0.1:{port}/chat" in banner, banner
            status, body = _get(f"http://127.0.0.1:{port}/healthz")
            assert (status, body) == (200, b'{"status": "ok"}')
            status, _ = _get(f"http://127.0.0.1:{port}/readyz")
            assert status == 200
            status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200 and b"supportbot_turns_total" in metrics
            assert (tmp_path / "supportbot.db").exists()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, stderr = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                pytest.fail("serve did not stop within 30 s of SIGTERM")
        assert proc.returncode == 0, stderr


def test_serve_refuses_a_postgresql_database_behind(pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "SUPPORTBOT_DATABASE__URL": pg_url, "SUPPORTBOT_HTTP__PORT": "0"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "run `supportbot db upgrade` first" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


def _health(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "health", "--timeout", "3"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_a_wildcard_bind_prints_a_reachable_address_and_health_reads_the_configured_port(
    tmp_path: Path,
) -> None:
    """The Docker image binds 0.0.0.0: the banner must name an address a person can open, and
    `supportbot health` (its HEALTHCHECK) must probe the port the settings say, file or env."""
    port = _free_port()
    (tmp_path / "supportbot.toml").write_text(f"[http]\nhost = \"0.0.0.0\"\nport = {port}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env["SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND"] = "none"  # keyword-only, as without the extra
    down = _health(env, tmp_path)
    assert down.returncode == 1 and f":{port}/healthz did not answer" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr
    with subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            assert f"http://127.0.0.1:{port}/chat" in banner and "0.0.0.0" not in banner, banner
            up = _health(env, tmp_path)
            assert up.returncode == 0, up.stderr
            assert f"healthy: http://127.0.0.1:{port}/healthz" in up.stdout
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
