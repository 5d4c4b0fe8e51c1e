"""make_plan, health_of and status_rows as pure functions of (desired, recorded, live) values:
one test per row of the ownership table, no store, no API."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

import pytest

from reconciler.health import Health, Sync, health_of, readiness
from reconciler.model import (
    DeploymentKey,
    DesiredDeployment,
    DesiredState,
    LiveDeployment,
    Location,
    Record,
    RecordOutcome,
)
from reconciler.plan import Action, PlanError, PlanOptions, Reason, applied_record, make_plan
from reconciler.spec import DeploymentSpec
from reconciler.status import status_rows

BODY: dict[str, Any] = {
    "image": "nginx:latest",
    "flavor_name": "inference-16vcpu-232gib-1xh100-80gb",
    "listening_port": 80,
    "containers": [{"region_id": 1, "scale": {"min": 1, "max": 2}}],
}


def hasher(value: object) -> str:
    return "hash:" + json.dumps(value, sort_keys=True)


def want(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> DesiredDeployment:
    return DesiredDeployment(
        DeploymentKey(1, name),
        DeploymentSpec.model_validate({**BODY, **spec}),
        Location(f"{name}.yaml", 1),
        labels=MappingProxyType({"team": "search" if name != "other-svc" else "ads"}),
        annotations=MappingProxyType(annotations or {}),
    )


def live(
    name: str, status: str = "ACTIVE", error: str | None = None, **spec: Any
) -> LiveDeployment:
    body = {**BODY, **spec}
    containers = [
        {**c, "deploy_status": {"ready": 1, "total": 2}, "error_message": error}
        for c in body["containers"]
    ]
    answer = {**body, "containers": containers, "name": name, "status": status}
    return LiveDeployment.from_answer(1, answer)


def owned(desired: DesiredDeployment, outcome: RecordOutcome = RecordOutcome.CONVERGED) -> Record:
    return applied_record(desired, hasher, applied_at=1.0, outcome=outcome)


def plan_of(
    desired: list[DesiredDeployment],
    records: list[Record] = (),  # type: ignore[assignment]
    found: list[LiveDeployment] = (),  # type: ignore[assignment]
    **options: Any,
) -> list[tuple[str, Action, Reason, tuple[str, ...]]]:
    plan = make_plan(
        DesiredState(tuple(desired), len(desired)),
        {r.key: r for r in records},
        {f.key: f for f in found},
        hasher,
        PlanOptions(**options),
    )
    return [(c.key.name, c.action, c.reason, c.fields) for c in plan.changes]


def test_desired_only_is_created() -> None:
    assert plan_of([want("alpha-svc")]) == [("alpha-svc", Action.CREATE, Reason.NEW, ())]


def test_desired_and_live_without_a_record_is_adopted_unless_refused() -> None:
    desired, found = want("alpha-svc", description="mine"), live("alpha-svc")
    assert plan_of([desired], found=[found]) == [
        ("alpha-svc", Action.ADOPT, Reason.ADOPT, ("description",))
    ]
    with pytest.raises(PlanError, match="refusing to adopt"):
        plan_of([desired], found=[found], adopt=False)


def test_recorded_but_gone_live_is_recreated_as_drift() -> None:
    desired = want("alpha-svc")
    [(_, action, reason, _)] = plan_of([desired], [owned(desired)])
    assert (action, reason) == (Action.CREATE, Reason.DRIFT_MISSING) and reason.is_drift


def test_all_three_equal_is_a_noop() -> None:
    desired = want("alpha-svc")
    assert plan_of([desired], [owned(desired)], [live("alpha-svc")]) == [
        ("alpha-svc", Action.NOOP, Reason.IN_SYNC, ())
    ]


def test_a_changed_manifest_updates_only_its_fields() -> None:
    before, after = want("alpha-svc"), want("alpha-svc", image="nginx:1.27")
    [(_, action, reason, fields)] = plan_of([after], [owned(before)], [live("alpha-svc")])
    assert (action, reason, fields) == (Action.UPDATE, Reason.MANIFEST_CHANGED, ("image",))
    assert not reason.is_drift


def test_an_out_of_band_edit_is_drift() -> None:
    desired = want("alpha-svc")
    edited = live("alpha-svc", image="nginx:edited")
    [(_, action, reason, fields)] = plan_of([desired], [owned(desired)], [edited])
    assert (action, reason, fields) == (Action.UPDATE, Reason.DRIFT, ("image",))
    assert reason.is_drift


def test_orphans_are_kept_without_prune_deleted_with_it_and_protected_by_annotation() -> None:
    keep, gone = want("keep-svc"), want("gone-svc")
    found = [live("keep-svc"), live("gone-svc")]
    assert plan_of([keep], [owned(keep), owned(gone)], found)[0][1:3] == (
        Action.NOOP,
        Reason.ORPHAN_KEPT,
    )
    assert plan_of([keep], [owned(keep), owned(gone)], found, prune=True)[0][1:3] == (
        Action.DELETE,
        Reason.ORPHAN,
    )
    assert plan_of([keep], [owned(keep), owned(gone)], found[:1], prune=True)[0][1:3] == (
        Action.DELETE,
        Reason.ORPHAN_GONE,
    )
    protected = want("gone-svc", annotations={"reconciler/prune": "false"})
    assert plan_of([keep], [owned(keep), owned(protected)], found, prune=True)[0][1:3] == (
        Action.NOOP,
        Reason.ORPHAN_PROTECTED,
    )
    assert all(r.is_orphan for r in (Reason.ORPHAN, Reason.ORPHAN_GONE, Reason.ORPHAN_KEPT))


def test_pruning_everything_needs_allow_empty() -> None:
    gone = want("gone-svc")
    with pytest.raises(PlanError, match="allow-empty"):
        plan_of([], [owned(gone)], [live("gone-svc")], prune=True)
    assert plan_of([], [owned(gone)], [live("gone-svc")], prune=True, allow_empty=True)[0][1] == (
        Action.DELETE
    )


def test_a_deleting_namesake_counts_as_absent_and_strangers_never_appear() -> None:
    found = [live("alpha-svc", status="DELETING"), live("stranger-svc")]
    assert plan_of([want("alpha-svc")], found=found) == [
        ("alpha-svc", Action.CREATE, Reason.NEW, ())
    ]


def test_a_selector_narrows_desired_and_recorded_alike() -> None:
    ours, theirs = want("alpha-svc"), want("other-svc")
    names = plan_of([ours, theirs], [owned(theirs)], selector={"team": "search"})
    assert [n for n, *_ in names] == ["alpha-svc"]


# -- health --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "min_", "health"),
    [
        ("ACTIVE", None, 1, Health.HEALTHY),
        ("PENDING", None, 0, Health.HEALTHY),  # scaled to zero
        ("PENDING", None, 1, Health.PROGRESSING),
        ("DEPLOYING", None, 1, Health.PROGRESSING),
        ("PARTIALLYDEPLOYED", None, 1, Health.PROGRESSING),
        ("PARTIALLYDEPLOYED", "ErrImagePull", 1, Health.DEGRADED),
        ("DISABLED", None, 1, Health.SUSPENDED),
        ("DELETING", None, 1, Health.MISSING),
        ("SOMETHING_NEW", None, 1, Health.UNKNOWN),
    ],
)
def test_health_of(status: str, error: str | None, min_: int, health: Health) -> None:
    containers = [{"region_id": 1, "scale": {"min": min_, "max": 2}}]
    assert health_of(live("alpha-svc", status, error, containers=containers)) is health


def test_health_of_nothing_is_missing_and_terminal_states() -> None:
    assert health_of(None) is Health.MISSING and readiness(None) == (0, 0)
    assert readiness(live("alpha-svc")) == (1, 2)
    assert {h for h in Health if h.is_terminal} == {
        Health.HEALTHY,
        Health.SUSPENDED,
        Health.MISSING,
    }


# -- status --------------------------------------------------------------------------------------


def test_status_rows_say_sync_health_and_why() -> None:
    synced, drifted, missing = want("a-svc"), want("b-svc"), want("c-svc")
    failed = want("d-svc")
    records = {
        r.key: r
        for r in (
            owned(synced),
            owned(drifted),
            owned(missing),
            applied_record(failed, hasher, applied_at=2.0, outcome=RecordOutcome.FAILED,
                           message="quota"),
        )
    }  # fmt: skip
    found = {
        f.key: f
        for f in (
            live("a-svc"),
            live("b-svc", image="nginx:edited"),
            live("d-svc", status="PARTIALLYDEPLOYED"),
        )
    }
    rows = {r.key.name: r for r in status_rows(records, found, hasher)}
    assert (rows["a-svc"].sync, rows["a-svc"].health, rows["a-svc"].message) == (
        Sync.SYNCED,
        Health.HEALTHY,
        "",
    )
    assert rows["b-svc"].sync is Sync.OUT_OF_SYNC and rows["b-svc"].message == "drift: image"
    assert (rows["c-svc"].health, rows["c-svc"].message) == (
        Health.MISSING,
        "not found in the API",
    )
    assert rows["d-svc"].message == "last apply: failed: quota"
    assert rows["a-svc"].to_json()["last_applied_at"] == "1970-01-01T00:00:01Z"
