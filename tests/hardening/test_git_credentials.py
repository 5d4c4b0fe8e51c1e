"""A git URL's credentials never show: not in errors, logs or `/api/status`'s `source`."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.simulator import BackgroundServer
from reconciler.sources import GitSource, SourceError
from reconciler.web import build_app

from ..canary import CANARIES, assert_no_canary
from ..uiharness import Running

TOKEN = CANARIES["git_token"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: connections are refused


async def test_git_errors_and_description_hide_credentials(tmp_path: Path) -> None:
    url = f"http://deploy-bot:{TOKEN}@127.0.0.1:{closed_port()}/team/manifests.git"
    source = GitSource(url, "main", tmp_path / "git")
    assert TOKEN not in source.describe() and "deploy-bot" not in source.describe()
    assert source.describe().startswith("http://***@127.0.0.1:")
    with pytest.raises(SourceError) as caught:
        await source.sync()
    assert TOKEN not in str(caught.value)
    assert "failed" in str(caught.value)


async def test_status_and_logs_hide_credentials(
    tmp_path: Path,
    sim: BackgroundServer,
    start: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"https://user:{TOKEN}@127.0.0.1:{closed_port()}/manifests.git"
    run: Running = await start(GitSource(url, "main", tmp_path / "git"), sim)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(run.service)), base_url="http://service"
    ) as app:
        status = (await app.get("/api/status")).text
    assert "***@127.0.0.1" in status
    assert "reconcile failed: git clone of https://***@127.0.0.1" in caplog.text
    assert_no_canary({"/api/status": status, "logs": caplog.text})
