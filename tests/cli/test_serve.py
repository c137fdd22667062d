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
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "run `supportbot db upgrade` first" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
