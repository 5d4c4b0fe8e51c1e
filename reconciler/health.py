"""Health and sync of a deployment, from values alone (no I/O).

Health reads the API's status and containers: ACTIVE is Healthy, and so is PENDING when every
container is scaled to zero; DEPLOYING and PARTIALLYDEPLOYED are Progressing unless a container
reports an `error_message`, which makes them Degraded; DISABLED is Suspended; absent is Missing.
"""

from __future__ import annotations

from enum import StrEnum

from .model import DeploymentStatus, LiveDeployment
from .textsafe import escape


class Health(StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"
    MISSING = "Missing"
    UNKNOWN = "Unknown"

    @property
    def is_terminal(self) -> bool:
        """No point waiting longer for this deployment to change by itself."""
        return self in (Health.HEALTHY, Health.SUSPENDED, Health.MISSING)


class Sync(StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


def health_of(live: LiveDeployment | None) -> Health:
    if live is None:
        return Health.MISSING
    if any(c.error_message for c in live.containers_status):
        return Health.DEGRADED
    status = live.status
    if status == DeploymentStatus.ACTIVE:
        return Health.HEALTHY
    if status == DeploymentStatus.PENDING:
        scaled_to_zero = all(
            (c.get("scale") or {}).get("min") == 0 for c in live.spec_view.get("containers", [])
        )
        return Health.HEALTHY if scaled_to_zero else Health.PROGRESSING
    if status in (DeploymentStatus.DEPLOYING, DeploymentStatus.PARTIALLYDEPLOYED):
        return Health.PROGRESSING
    if status == DeploymentStatus.DISABLED:
        return Health.SUSPENDED
    if status == DeploymentStatus.DELETING:
        return Health.MISSING
    return Health.UNKNOWN


def readiness(live: LiveDeployment | None) -> tuple[int, int]:
    """(ready, total) replicas over every container."""
    if live is None:
        return 0, 0
    return (
        sum(c.ready for c in live.containers_status),
        sum(c.total for c in live.containers_status),
    )


def degraded_message(live: LiveDeployment) -> str:
    errors = [
        f"region {c.region_id}: {escape(c.error_message)}"
        for c in live.containers_status
        if c.error_message
    ]
    return "; ".join(errors)
