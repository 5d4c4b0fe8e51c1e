"""Planning against the simulator over real HTTP: actions, reasons, paths, ownership, secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.api import ApiClient
from reconciler.config import ApiSettings, Secret
from reconciler.engine import plan_against
from reconciler.manifests import load_desired
from reconciler.plan import Action, Change, Plan, PlanError, PlanOptions, applied_record
from reconciler.render import render
from reconciler.simulator import BackgroundServer
from reconciler.state import SqliteStateStore

from .conftest import API_KEY, ManualClock, seed_body

SECRET = "hf_SuperSecretToken_123"
ENV = {"HF_TOKEN": SECRET}


def manifest(name: str, image: str = "nginx:latest", extra: str = "", labels: str = "") -> str:
    return f"""\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata:
  name: {name}
  project_id: 1
  labels: {{{labels}}}
spec:
  image: {image}
  flavor_name: inference-16vcpu-232gib-1xh100-80gb
  listening_port: 80
  description: {name} service
  command: ["nginx", "-g", "daemon off;"]
  containers:
    - region_id: 1
      scale: {{min: 1, max: 3, cooldown_period: 60, triggers: {{cpu: {{threshold: 80}}}}}}
  envs:
    HF_TOKEN: "${{HF_TOKEN}}"
    MODE: plain
{extra}"""


class World:
    """Manifests on disk, a state store, and the simulator behind real HTTP."""

    def __init__(self, root: Path, api: ApiClient, clock: ManualClock) -> None:
        self.dir = root / "manifests"
        self.dir.mkdir()
        self.store = SqliteStateStore(root / "state.db")
        self.api = api
        self.clock = clock

    def write(self, name: str, text: str) -> None:
        (self.dir / f"{name}.yaml").write_text(text)

    def remove(self, name: str) -> None:
        (self.dir / f"{name}.yaml").unlink()

    async def plan(self, **options: Any) -> Plan:
        desired = load_desired([self.dir], env=ENV)
        plan, _ = await plan_against(desired, self.store, self.api, PlanOptions(**options))
        return plan

    async def converge(self, plan: Plan) -> None:
        """Stand-in for apply: make the simulator match the plan and record it."""
        desired = load_desired([self.dir], env=ENV).by_key()
        for change in plan.changes:
            key = change.key
            if change.action is Action.CREATE:
                body = desired[key].spec.body()
                await self.api.create_deployment(key.project_id, {"name": key.name, **body})
            elif change.action in (Action.UPDATE, Action.ADOPT) and change.fields:
                body = desired[key].spec.body()
                patch = {f: body.get(f) for f in change.fields}
                await self.api.update_deployment(key.project_id, key.name, patch)
            elif change.action is Action.DELETE:
                await self.api.delete_deployment(key.project_id, key.name)
                self.store.forget(key)
                continue
            if change.action.mutates:
                self.store.save_record(
                    applied_record(
                        desired[key], self.store.hash_value, applied_at=1.0, outcome="converged"
                    )
                )
        self.clock.advance(5)


@pytest.fixture
async def world(
    tmp_path: Path, server: BackgroundServer, clock: ManualClock
) -> AsyncIterator[World]:
    settings = ApiSettings(base_url=server.url, api_key=Secret(API_KEY))
    async with ApiClient(settings) as api:
        world = World(tmp_path, api, clock)
        yield world
        world.store.close()


def actions(plan: Plan) -> list[tuple[str, str, str]]:
    return [(c.key.name, c.action.value, c.reason) for c in plan.changes]


def change_of(plan: Plan, name: str) -> Change:
    return next(c for c in plan.changes if c.key.name == name)


async def test_first_plan_creates_then_a_converged_world_is_all_noops(world: World) -> None:
    world.write("alpha-svc", manifest("alpha-svc"))
    world.write("beta-svc", manifest("beta-svc"))
    first = await world.plan()
    assert actions(first) == [("alpha-svc", "create", "new"), ("beta-svc", "create", "new")]
    assert first.has_changes

    await world.converge(first)
    again = await world.plan()
    assert actions(again) == [("alpha-svc", "noop", "in sync"), ("beta-svc", "noop", "in sync")]
    assert not again.has_changes
    assert all(c.changes == () for c in again.changes)


async def test_each_kind_of_change(world: World) -> None:
    for name in ("alpha-svc", "beta-svc", "gamma-svc"):
        world.write(name, manifest(name))
    await world.converge(await world.plan())

    world.write("alpha-svc", manifest("alpha-svc", image="nginx:1.27"))  # manifest changed
    await world.api.update_deployment(1, "beta-svc", {"description": "edited by hand"})  # drift
    await world.api.delete_deployment(1, "gamma-svc")  # deleted out of band
    world.clock.advance(5)

    plan = await world.plan()
    assert actions(plan) == [
        ("alpha-svc", "update", "manifest changed"),
        ("beta-svc", "update", "drift"),
        ("gamma-svc", "create", "drift: missing"),
    ]
    alpha, beta, _ = plan.changes
    assert [(f.path, f.before, f.after) for f in alpha.changes] == [
        ("image", "nginx:latest", "nginx:1.27")
    ]
    assert alpha.fields == ("image",)
    assert [(f.path, f.before, f.after) for f in beta.changes] == [
        ("description", "edited by hand", "beta-svc service")
    ]

    await world.converge(plan)
    assert not (await world.plan()).has_changes


async def test_scale_and_secret_changes_show_paths_not_values(world: World) -> None:
    world.write("alpha-svc", manifest("alpha-svc"))
    await world.converge(await world.plan())
    text = manifest("alpha-svc").replace("max: 3", "max: 5")
    ENV["HF_TOKEN"] = "hf_rotated_token_456"
    try:
        world.write("alpha-svc", text)
        plan = await world.plan()
    finally:
        ENV["HF_TOKEN"] = SECRET
    [change] = plan.changes
    assert [(f.path, f.before, f.after, f.sensitive) for f in change.changes] == [
        ("containers[region_id=1].scale.max", 3, 5, False),
        ("envs.HF_TOKEN", "(sensitive)", "(sensitive)", True),
    ]
    assert change.fields == ("containers", "envs")


async def test_a_removed_manifest_is_an_orphan_deleted_only_with_prune(world: World) -> None:
    world.write("alpha-svc", manifest("alpha-svc"))
    world.write("beta-svc", manifest("beta-svc"))
    world.write(
        "keep-svc",
        manifest("keep-svc").replace(
            "  labels:", '  annotations: {reconciler/prune: "false"}\n  labels:'
        ),
    )
    await world.converge(await world.plan())
    world.remove("beta-svc")
    world.remove("keep-svc")

    kept = await world.plan()
    assert change_of(kept, "beta-svc").action is Action.NOOP
    assert change_of(kept, "beta-svc").reason == "orphan: kept (use --prune to delete)"

    pruned = await world.plan(prune=True)
    assert (change_of(pruned, "beta-svc").action, change_of(pruned, "beta-svc").reason) == (
        Action.DELETE,
        "orphan",
    )
    assert change_of(pruned, "keep-svc").action is Action.NOOP
    assert "reconciler/prune" in change_of(pruned, "keep-svc").reason

    await world.converge(pruned)
    assert [c.key.name for c in (await world.plan(prune=True)).changes] == ["alpha-svc", "keep-svc"]


async def test_an_unowned_live_deployment_is_never_touched(world: World) -> None:
    world.write("alpha-svc", manifest("alpha-svc"))
    await world.converge(await world.plan())
    await world.api.create_deployment(1, seed_body("stranger"))
    world.clock.advance(5)
    plan = await world.plan(prune=True)
    assert [c.key.name for c in plan.changes] == ["alpha-svc"]


async def test_adopt_and_no_adopt(world: World) -> None:
    await world.api.create_deployment(1, seed_body("found-svc"))
    world.clock.advance(5)
    world.write("found-svc", manifest("found-svc"))

    plan = await world.plan()
    [change] = plan.changes
    assert (change.action, change.reason) == (Action.ADOPT, "adopt")
    assert [f.path for f in change.changes] == [
        "description",
        "envs.DEBUG_MODE",  # in the live deployment, not in the manifest: envs are whole maps
        "envs.HF_TOKEN",
        "envs.KEY",
        "envs.MODE",
    ]
    # the live memory trigger is not in the manifest, and there is no record: left alone
    assert change.fields == ("description", "envs")

    with pytest.raises(PlanError, match=r"not owned.*1/found-svc.*--no-adopt"):
        await world.plan(adopt=False)

    await world.converge(plan)
    assert actions(await world.plan()) == [("found-svc", "noop", "in sync")]


async def test_pruning_everything_needs_allow_empty(world: World) -> None:
    world.write("alpha-svc", manifest("alpha-svc"))
    await world.converge(await world.plan())
    world.remove("alpha-svc")
    with pytest.raises(PlanError, match="manifest set is empty"):
        await world.plan(prune=True)
    plan = await world.plan(prune=True, allow_empty=True)
    assert actions(plan) == [("alpha-svc", "delete", "orphan")]


async def test_selector_plans_a_subset(world: World) -> None:
    world.write("alpha-svc", manifest("alpha-svc", labels="team: search"))
    world.write("beta-svc", manifest("beta-svc", labels="team: ads"))
    plan = await world.plan(selector={"team": "search"})
    assert [c.key.name for c in plan.changes] == ["alpha-svc"]


async def test_secrets_never_appear_in_outputs_or_the_state_file(world: World) -> None:
    world.write("alpha-svc", manifest("alpha-svc"))
    plan = await world.plan()
    outputs = [render(plan, fmt) for fmt in ("text", "json", "markdown")]
    assert all(SECRET not in out for out in outputs)
    assert all("(sensitive)" in out for out in outputs)
    await world.converge(plan)
    state_bytes = b"".join(p.read_bytes() for p in world.store.path.parent.glob("state.db*"))
    assert SECRET.encode() not in state_bytes
    assert b"hmac-sha256:" in state_bytes


async def test_fingerprint_follows_live_and_desired_state(world: World) -> None:
    world.write("alpha-svc", manifest("alpha-svc"))
    await world.converge(await world.plan())
    first, same = await world.plan(), await world.plan()
    assert first.fingerprint == same.fingerprint
    await world.api.update_deployment(1, "alpha-svc", {"description": "drifted"})
    assert (await world.plan()).fingerprint != first.fingerprint


async def test_the_plan_fingerprints_exactly_what_it_was_made_from(world: World) -> None:
    """make_plan feeds its digest as it goes; it is the digest of the whole inputs."""
    from reconciler.plan.make import fingerprint

    for name in ("alpha-svc", "beta-svc", "gamma-svc"):
        world.write(name, manifest(name))
    await world.converge(await world.plan())
    world.remove("gamma-svc")  # an orphan, kept
    world.write("delta-svc", manifest("delta-svc"))  # new
    await world.api.update_deployment(1, "alpha-svc", {"description": "drifted"})
    desired = load_desired([world.dir], env=ENV)
    plan, inputs = await plan_against(desired, world.store, world.api, PlanOptions())
    assert {c.action.value for c in plan.changes} >= {"create", "update", "noop"}
    expected = fingerprint(
        desired.by_key(), inputs.records, inputs.live, plan.changes, world.store.hash_value
    )
    assert plan.fingerprint == expected


async def test_a_plan_from_compact_listings_is_the_plan_from_decoded_ones(world: World) -> None:
    """plan_against lists live deployments and keeps records as JSON text (`compact`); the
    changes, their order and the fingerprint are those of a plan made from decoded ones."""
    from reconciler.engine import fetch_live
    from reconciler.plan import make_plan

    for name in ("alpha-svc", "beta-svc", "gamma-svc", "omega-svc"):
        world.write(name, manifest(name))
    await world.converge(await world.plan())
    world.remove("gamma-svc")  # an orphan, kept
    world.write("delta-svc", manifest("delta-svc"))  # new
    world.write("omega-svc", manifest("omega-svc", image="nginx:1.27"))  # the manifest changed
    await world.api.update_deployment(1, "alpha-svc", {"description": "drifted"})
    desired = load_desired([world.dir], env=ENV)
    plan, inputs = await plan_against(desired, world.store, world.api, PlanOptions())
    assert all(v.compact for v in inputs.live.values())
    assert {c.action.value for c in plan.changes} >= {"create", "update", "noop"}
    decoded = await fetch_live(world.api, {k.project_id for k in inputs.live})
    assert not any(v.compact for v in decoded.values())
    assert decoded == inputs.live
    again = make_plan(desired, inputs.records, decoded, world.store.hash_value, PlanOptions())
    assert again.changes == plan.changes
    assert again.fingerprint == plan.fingerprint
    assert render(again, "json") == render(plan, "json")
    # the records too: kept as JSON text by plan_against, decoded as the store reads them
    assert all(r.compacted() is r for r in inputs.records.values())
    read = world.store.records()
    assert read == inputs.records
    assert not any(r.compacted() is r for r in read.values())
    assert all(r.opened() is r for r in read.values())
    third = make_plan(desired, read, decoded, world.store.hash_value, PlanOptions())
    assert third.changes == plan.changes
    assert third.fingerprint == plan.fingerprint
