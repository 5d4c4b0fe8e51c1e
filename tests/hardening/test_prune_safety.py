"""Prune never deletes a deployment that still has a manifest, whatever the selector."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model import (
    DeploymentKey,
    DesiredDeployment,
    DesiredState,
    LiveDeployment,
    Location,
    RecordOutcome,
)
from reconciler.plan import Action, PlanError, PlanOptions, applied_record, make_plan
from reconciler.spec import DeploymentSpec

from ..test_plan import World, actions, manifest, world
from ..test_plan_triples import BODY, hasher

__all__ = ["world"]


async def test_a_relabelled_deployment_with_a_manifest_is_never_pruned(world: World) -> None:
    world.write("alpha-svc", manifest("alpha-svc", labels="team: search"))
    world.write("beta-svc", manifest("beta-svc", labels="team: search"))
    await world.converge(await world.plan())
    # beta moves to another team: its record still carries the old label
    world.write("beta-svc", manifest("beta-svc", labels="team: ads"))
    plan = await world.plan(selector={"team": "search"}, prune=True)
    assert ("beta-svc", "delete", "orphan") not in actions(plan)
    assert all(c.action.value != "delete" for c in plan.changes)


async def test_a_deployment_newly_selected_is_updated_not_adopted(world: World) -> None:
    world.write("alpha-svc", manifest("alpha-svc", labels="team: ads"))
    await world.converge(await world.plan())
    world.write("alpha-svc", manifest("alpha-svc", labels="team: search"))
    plan = await world.plan(selector={"team": "search"}, adopt=False)
    assert actions(plan) == [("alpha-svc", "noop", "in sync")]


NAMES = ["alpha-svc", "beta-svc", "gamma-svc", "delta-svc"]


def want(name: str, team: str) -> DesiredDeployment:
    return DesiredDeployment(
        DeploymentKey(1, name),
        DeploymentSpec.model_validate(BODY),
        Location(f"{name}.yaml", 1),
        labels=MappingProxyType({"team": team}),
        annotations=MappingProxyType({}),
    )


def live(name: str, managed: bool) -> LiveDeployment:
    references = [{"kind": "AppDeployment", "name": "my-app"}] if managed else []
    containers = [{**c, "deploy_status": {"ready": 1, "total": 1}} for c in BODY["containers"]]
    answer = {**BODY, "containers": containers, "name": name, "status": "ACTIVE"}
    return LiveDeployment.from_answer(1, {**answer, "object_references": references})


TEAMS = st.sampled_from(["search", "ads"])


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Any], list[Any], list[Any], PlanOptions]:
    desired, records, found = [], [], []
    for name in NAMES:
        manifest_team, record_team = draw(TEAMS), draw(TEAMS)
        if draw(st.booleans()):
            desired.append(want(name, manifest_team))
        if draw(st.booleans()):
            records.append(
                applied_record(
                    want(name, record_team), hasher, applied_at=1.0, outcome=RecordOutcome.CONVERGED
                )
            )
        if draw(st.booleans()):
            managed = draw(st.booleans())
            found.append(live(name, managed))
    options = PlanOptions(
        prune=True,
        allow_empty=True,
        force=draw(st.booleans()),
        adopt=draw(st.booleans()),
        selector=draw(st.sampled_from([{}, {"team": "search"}, {"team": "ads"}])),
        targets=frozenset(draw(st.sets(st.sampled_from(NAMES), max_size=2))),
    )
    return desired, records, found, options


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_prune_deletes_only_owned_orphans_whatever_the_options(
    world: tuple[list[Any], list[Any], list[Any], PlanOptions],
) -> None:
    desired, records, found, options = world
    try:
        plan = make_plan(
            DesiredState(tuple(desired), len(desired)),
            {r.key: r for r in records},
            {f.key: f for f in found},
            hasher,
            options,
        )
    except PlanError:
        return  # a refusal (an unknown --target, adopting with --no-adopt) deletes nothing
    with_manifest = {d.key for d in desired}
    owned = {r.key for r in records}
    managed = {f.key for f in found if f.managed_by}
    for change in plan.changes:
        assert change.key in with_manifest | owned
        if change.action is Action.DELETE:
            assert change.key not in with_manifest, change
            assert change.key in owned and change.key not in managed, change
        if change.key in managed:
            assert not change.action.mutates, change
