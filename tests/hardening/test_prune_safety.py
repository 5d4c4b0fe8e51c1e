"""Prune never deletes a deployment that still has a manifest, whatever the selector."""

from __future__ import annotations

from ..test_plan import World, actions, manifest, world

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
