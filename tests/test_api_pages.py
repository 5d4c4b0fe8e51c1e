"""A listing handed over page by page: each item as its page arrives, the unreadable returned."""

from __future__ import annotations

import httpx

from reconciler.api import ApiClient, Deployment
from reconciler.config import ApiSettings, Secret
from reconciler.engine import fetch_live
from reconciler.model import DeploymentKey, LiveDeployment
from reconciler.simulator import transport

from .conftest import API_KEY, ManualClock, make_simulator, seed_body

SETTINGS = ApiSettings(base_url="http://api.test", api_key=Secret(API_KEY), project_id=1)


def item(name: str, **changes: object) -> dict[str, object]:
    return {
        "name": name,
        "image": "nginx:latest",
        "listening_port": 80,
        "flavor_name": "f",
        "status": "ACTIVE",
        "containers": [{"region_id": 1, "scale": {"min": 1, "max": 1}}],
        **changes,
    }


async def test_each_item_is_handed_over_as_its_page_arrives() -> None:
    pages = [
        {"count": 4, "results": [item("svc-a"), item("broken", listening_port="eighty")]},
        {"count": 4, "results": [item("svc-b"), item("svc-c")]},
    ]
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json=pages[len(asked) - 1])

    taken: list[tuple[str, int]] = []
    async with ApiClient(SETTINGS, transport=httpx.MockTransport(handler)) as api:
        unreadable = await api.each_deployment(1, lambda d: taken.append((d.name, len(asked))))
    assert taken == [("svc-a", 1), ("svc-b", 2), ("svc-c", 2)]  # page 1's before page 2 is asked
    assert [u.name for u in unreadable] == ["broken"]
    assert "listening_port" in unreadable[0].message


async def test_polling_answers_are_handed_over_page_by_page_with_the_pages_counted() -> None:
    """The watcher's lists (`each_answer`): plain JSON items, page 1's handed over before page 2
    is asked for, so a poll keeps only the items someone waits on, never the whole listing."""
    pages = [
        {"count": 3, "results": [{"id": "t1"}, {"id": "t2"}]},
        {"count": 3, "results": [{"id": "t3"}]},
    ]
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json=pages[len(asked) - 1])

    taken: list[tuple[str, int]] = []
    async with ApiClient(SETTINGS, transport=httpx.MockTransport(handler), page_size=2) as api:
        count = await api.each_task_answer(lambda t: taken.append((t["id"], len(asked))))
    assert taken == [("t1", 1), ("t2", 1), ("t3", 2)]
    assert count == 2
    assert [r.url.params["offset"] for r in asked] == ["0", "2"]


async def test_fetch_live_is_what_the_whole_listings_say(clock: ManualClock) -> None:
    sim = make_simulator(clock, page_cap=2)
    async with ApiClient(SETTINGS, transport=transport(sim), page_size=1000) as api:
        for project in (1, 2):
            for i in range(3):
                await api.create_deployment(project, seed_body(f"svc-{project}-{i}"))
        live = await fetch_live(api, [2, 1, 2])
        expected: dict[DeploymentKey, LiveDeployment] = {}
        for project in (1, 2):
            listing: list[Deployment] = await api.list_deployments(project)
            for d in listing:
                found = LiveDeployment.from_answer(project, d.model_dump(mode="json"))
                expected[found.key] = found
    assert list(live) == list(expected)  # projects in order, each in the API's order
    assert live == expected
