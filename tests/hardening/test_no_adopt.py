"""`--no-adopt` holds during execution too: a create answered 409 (someone created the name
between plan and apply) fails that deployment and leaves the namesake untouched."""

from __future__ import annotations

from pathlib import Path

import httpx

from reconciler import engine
from reconciler.config import ApiSettings, Secret
from reconciler.engine import Target
from reconciler.execute import ApplyOptions
from reconciler.execute.tasks import PollOptions
from reconciler.manifests import load_desired
from reconciler.plan import Plan, PlanOptions
from reconciler.simulator import BackgroundServer
from reconciler.state import SqliteStateStore

from ..conftest import API_KEY, manifest, seed_body

FAST = ApplyOptions(timeout=30, poll=PollOptions(initial=0.01, cap=0.05))


async def test_a_409_on_create_with_no_adopt_fails_and_touches_nothing(
    tmp_path: Path, sim: BackgroundServer
) -> None:
    server = sim
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "race-svc.yaml").write_text(manifest("race-svc", image="nginx:ours"))
    (folder / "calm-svc.yaml").write_text(manifest("calm-svc"))
    desired = load_desired([folder], env={})
    target = Target(ApiSettings(base_url=server.url, api_key=Secret(API_KEY)), tmp_path / "s.db")

    def someone_creates_it_now(plan: Plan) -> bool:
        body = seed_body("race-svc", image="theirs:1")
        answer = httpx.post(
            f"{server.url}/cloud/v3/inference/1/deployments",
            json=body,
            headers={"Authorization": f"APIKey {API_KEY}"},
        )
        assert answer.status_code in (200, 201)
        return True

    report = await engine.apply(
        desired,
        target,
        PlanOptions(adopt=False),
        ApplyOptions(timeout=30, poll=FAST.poll, adopt=False),
        engine.ApplyHooks(confirm=someone_creates_it_now),
    )
    outcomes = {o.key.name: o for o in report.outcomes}
    assert outcomes["calm-svc"].result.ok
    race = outcomes["race-svc"]
    assert not race.result.ok
    assert "409" in race.error and "--no-adopt" in race.error
    cloud = server.simulator.cloud
    theirs = cloud.view(cloud.deployments[(1, "race-svc")])
    assert theirs["image"] == "theirs:1"  # not patched
    assert not [r for r in server.simulator.requests if r[0] == "PATCH"]
    store = SqliteStateStore(target.state_path)
    try:
        assert [k.name for k in store.records()] == ["calm-svc"]  # not claimed either
    finally:
        store.close()
