"""Which changes a reconcile of the service may run: self-heal off leaves drift alone, for the
deployments and for credentials, secrets and API keys alike."""

from __future__ import annotations

from reconciler.healing import Healing
from reconciler.kinds import Kind, ObjectKey
from reconciler.metrics import Metrics
from reconciler.model import DeploymentKey
from reconciler.objects_plan import ObjectAction, ObjectChange, ObjectReason
from reconciler.plan import Action, Change, Plan, Reason

from .fakes import FakeTime

EDITED = ObjectChange(
    ObjectKey(Kind.SECRET, 1, "sqs-reader"), ObjectAction.UPDATE, ObjectReason.DRIFT
)
CHANGED = ObjectChange(
    ObjectKey(Kind.REGISTRY_CREDENTIAL, 1, "ghcr-acme"),
    ObjectAction.UPDATE,
    ObjectReason.MANIFEST_CHANGED,
)
PLAN = Plan(
    (
        Change(DeploymentKey(1, "started-svc"), Action.STOP, Reason.DRIFT_STARTED),
        Change(DeploymentKey(1, "new-svc"), Action.CREATE, Reason.NEW),
    ),
    "sha256:x",
    objects=(EDITED, CHANGED),
)


def test_without_self_heal_drift_of_any_kind_is_reported_and_left_alone() -> None:
    healing = Healing(FakeTime(), Metrics(), self_heal=False)

    chosen = healing.choose(PLAN)

    assert [c.key.name for c in chosen.changes] == ["new-svc"]
    assert chosen.objects == (CHANGED,)
    assert healing.drifted == {DeploymentKey(1, "started-svc"): "drift: started out of band"}
    assert healing.metrics.value("reconciler_drift_detected_total") == 2


def test_with_self_heal_everything_runs() -> None:
    healing = Healing(FakeTime(), Metrics(), self_heal=True)

    chosen = healing.choose(PLAN)

    assert chosen.changes == PLAN.changes and chosen.objects == PLAN.objects
