"""`plan_against` asks for the preflight catalog while the deployment lists page, and a failing
deployment list is still the error it reports, with nothing left running behind it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from reconciler.api import ApiClient
from reconciler.config import ApiSettings, Secret
from reconciler.engine import plan_against
from reconciler.errors import ApiError
from reconciler.manifests import load_desired
from reconciler.model import DesiredState
from reconciler.plan import PlanOptions
from reconciler.state import SqliteStateStore

from .conftest import API_KEY, FLAVOR, manifest

EMPTY = {"count": 0, "results": []}
CATALOG = {
    "/cloud/v3/inference/flavors": {"count": 1, "results": [{"name": FLAVOR}]},
    "/cloud/v3/inference/capacity": {
        "count": 1,
        "results": [{"region_id": 1, "capacity": [{"flavor_name": FLAVOR, "capacity": 9}]}],
    },
}


def client(handler: httpx.MockTransport) -> ApiClient:
    settings = ApiSettings(base_url="https://api.example.test", api_key=Secret(API_KEY))
    return ApiClient(settings, transport=handler)


def desired_in(tmp_path: Path) -> DesiredState:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "web.yaml").write_text(manifest("web-app"))
    return load_desired([tmp_path / "m"])


async def test_the_catalog_is_asked_for_while_the_deployments_are_listed(tmp_path: Path) -> None:
    catalog_asked = asyncio.Event()
    overlapped: list[bool] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in CATALOG:
            catalog_asked.set()
            return httpx.Response(200, json=CATALOG[path])
        if path.endswith("/deployments"):
            try:  # a guard, not a pace: the catalog's request comes at once, or never
                await asyncio.wait_for(catalog_asked.wait(), timeout=5)
                overlapped.append(True)
            except TimeoutError:
                overlapped.append(False)
        return httpx.Response(200, json=EMPTY)

    store = SqliteStateStore(tmp_path / "state.db")
    async with client(httpx.MockTransport(handler)) as api:
        plan, _ = await plan_against(desired_in(tmp_path), store, api, PlanOptions(preflight=True))
    store.close()
    assert [c.action.value for c in plan.changes] == ["create"]
    assert overlapped == [True]


async def test_a_failing_deployment_list_is_the_error_and_nothing_is_left_running(
    tmp_path: Path,
) -> None:
    release = asyncio.Event()  # the catalog's answers wait until the test ends: never

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path in CATALOG:
            await release.wait()
            return httpx.Response(200, json=CATALOG[request.url.path])
        return httpx.Response(403, json={"message": "forbidden"})

    store = SqliteStateStore(tmp_path / "state.db")
    async with client(httpx.MockTransport(handler)) as api:
        with pytest.raises(ApiError) as raised:
            await plan_against(desired_in(tmp_path), store, api, PlanOptions(preflight=True))
        assert raised.value.path.endswith("/deployments")
        assert asyncio.all_tasks() == {asyncio.current_task()}
    store.close()
