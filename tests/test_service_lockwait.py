"""A reconcile waiting for another apply's lock does not hold up the service's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.state import open_store

from .conftest import manifest
from .uiharness import BackgroundServer, serving, sim_server


@pytest.fixture
def sim() -> Iterator[BackgroundServer]:
    with sim_server() as server:
        yield server


async def test_healthz_answers_while_a_reconcile_waits_for_the_apply_lock(
    tmp_path: Path, sim: BackgroundServer
) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    async with serving(tmp_path, folder, sim, lock_timeout=15) as served:
        other = open_store(str(tmp_path / "state" / "state.db"))  # a CLI apply, say
        other.acquire_lock(timeout=0)
        try:
            runs = served.service.runs
            served.service.trigger("test")
            while served.service.running_since is None:  # the reconcile has started
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(timeout=10) as http:  # bounded to fail fast
                answer = await http.get(served.url + "/healthz")
            assert answer.status_code == 200
            assert served.service.running_since is not None  # still waiting for the lock
        finally:
            other.release_lock()
            other.close()
        await served.settled(runs + 1)
        assert served.service.last is not None and served.service.last.result == "ok"
