"""Typed views of the API's answers (the response shape, API.md).

Tolerant on purpose: `extra="allow"` keeps fields this version does not know (they survive in
`model_extra` and `model_dump()`), and everything the SDK types as optional (or API.md lists as
nullable) may be missing or `null`: a `null` means the API's default, which the diff knows.
`command` comes as one string, or as a list as a docs example shows it. The request shape (what a
manifest holds) is a different thing and lives in `reconciler.spec`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticSerializationError

from ..model import ContainerStatus, DeploymentKey, DeploymentStatus, LiveDeployment, TaskState

__all__ = [
    "ContainerView",
    "CreatedResources",
    "DeployStatus",
    "Deployment",
    "DeploymentStatus",
    "Flavor",
    "ObjectReference",
    "ScaleView",
    "Task",
    "TaskState",
]


class _Answer(BaseModel):
    # JSON text (`Deployment.compact`) writes an infinity as `Infinity`, as `json.dumps` does,
    # not as `null`: decoded, it is the value `model_dump()` gives
    model_config = ConfigDict(extra="allow", frozen=True, ser_json_inf_nan="constants")


class DeployStatus(_Answer):
    ready: int = 0
    total: int = 0


class ScaleView(_Answer):
    min: int
    max: int
    cooldown_period: int | None = None
    polling_interval: int | None = None
    triggers: dict[str, dict[str, Any] | None] | None = None


class ContainerView(_Answer):
    region_id: int
    scale: ScaleView
    address: str | None = None
    deploy_status: DeployStatus = Field(default_factory=DeployStatus)
    error_message: str | None = None


class ObjectReference(_Answer):
    kind: str
    name: str


class Deployment(_Answer):
    """One deployment as the API reports it."""

    name: str
    project_id: int | None = None
    image: str
    listening_port: int
    flavor_name: str
    containers: list[ContainerView]
    status: DeploymentStatus | str
    address: str | None = None
    created_at: str | None = None
    command: str | list[str] | None = None  # usually one space-joined string
    credentials_name: str | None = None
    description: str | None = None
    envs: dict[str, str] | None = None
    ingress_opts: dict[str, Any] | None = None
    logging: dict[str, Any] | None = None
    probes: dict[str, Any] | None = None
    timeout: int | None = None
    api_keys: list[str] | None = None
    auth_enabled: bool | None = None
    object_references: list[ObjectReference] | None = None

    def compact(self, project_id: int) -> LiveDeployment:
        """`LiveDeployment.compact_answer(project_id, self.model_dump(mode="json"))`, without
        building the dicts: pydantic writes the JSON text itself (Python's `json` where it
        cannot: a lone surrogate), and the few fields read at once come from the model."""
        try:
            text = self.model_dump_json()
        except PydanticSerializationError:
            text = json.dumps(self.model_dump(mode="json"), separators=(",", ":"))
        statuses = tuple(
            ContainerStatus(
                region_id=c.region_id,
                ready=c.deploy_status.ready,
                total=c.deploy_status.total,
                error_message=c.error_message,
                address=c.address,
            )
            for c in self.containers
        )
        references = ", ".join(f"{r.kind} {r.name}" for r in self.object_references or ())
        return LiveDeployment(
            key=DeploymentKey(project_id, self.name),
            status=str(self.status),
            containers_status=statuses,
            managed_by=references or None,
            kept=text,
        )


class CreatedResources(_Answer):
    inference_instances: list[str] | None = None


class Task(_Answer):
    """One task of `/cloud/v1/tasks`."""

    id: str
    state: TaskState
    task_type: str = ""
    error: str | None = None
    project_id: int | None = None
    region_id: int | None = None
    request_id: str | None = None
    created_on: str | None = None
    updated_on: str | None = None
    finished_on: str | None = None
    created_resources: CreatedResources | None = None


class Flavor(_Answer):
    name: str
    cpu: float | None = None
    memory: float | None = None
    gpu: int | None = None
    gpu_model: str | None = None
    gpu_memory: float | None = None
    gpu_compute_capability: str | None = None
    is_gpu_shared: bool | None = None
    description: str | None = None


class FlavorCapacity(_Answer):
    flavor_name: str
    capacity: int


class RegionCapacity(_Answer):
    """Free capacity in one region: how many more replicas of each flavor fit."""

    region_id: int
    capacity: list[FlavorCapacity] = Field(default_factory=list)
