"""The simulated cloud: deployments and tasks, with a lifecycle derived from a clock.

Nothing runs in the background. A task stores when it was created, when it starts and when it
ends; a deployment stores when its containers started to come up. Every state a client can observe
(task NEW/RUNNING/FINISHED/ERROR, deployment DEPLOYING/PARTIALLYDEPLOYED/ACTIVE/...) is computed
from those instants and the clock at the moment of the request. That makes the lifecycle exact
under a fake clock in tests, and lets a persisted cloud carry on moving between processes (the
`--simulate` runs of the CLI), since wall time passes there too.

The one lazy step is `settle()`: effects that end a lifecycle (a finished delete removes the
deployment, a failed create removes it, a failed update restores the previous spec) are applied at
the start of each request, in task order.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import SimulatorConfig
from .objects import ObjectStore, check_references
from .shapes import deployment_view

Clock = Callable[[], float]

TASK_TYPES = {
    "create": "create_inference_instance",
    "update": "update_inference_instance",
    "delete": "delete_inference_instance",
}
TASK_RETENTION_SECONDS = 24 * 3600
# With `patch_merge`, a PATCH merges these objects into what is there instead of replacing them.
# Lists (`containers`, `command`) and user maps (`envs`, http headers) are always replaced.
MERGED_FIELDS = frozenset({"probes", "logging", "ingress_opts"})
REPLACED_MAPS = frozenset({"envs", "headers"})


def merged(old: Any, new: Any) -> Any:
    """`new` merged into `old`, object by object (RFC 7386 style, but `null` sets a null)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    out = dict(old)
    for key, value in new.items():
        out[key] = value if key in REPLACED_MAPS else merged(old.get(key), value)
    return out


def _check_merged(spec: dict[str, Any]) -> None:
    """A merge may leave what no single body could say (two actions in one probe): refuse it."""
    for key, config in (spec.get("probes") or {}).items():
        probe = (config or {}).get("probe") or {}
        actions = [a for a in ("exec", "http_get", "tcp_socket") if probe.get(a) is not None]
        if len(actions) > 1:
            raise CloudError(
                422,
                "ValidationError",
                f"probes.{key}.probe: only one of exec, http_get, tcp_socket may be set after "
                f"the merge, got {', '.join(actions)}",
            )


class CloudError(Exception):
    """A request the cloud refuses; the app turns it into Gcore's error body."""

    def __init__(self, status: int, exception_class: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.exception_class = exception_class
        self.message = message


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def parse_iso(text: str) -> float:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass
class Task:
    id: str
    kind: str  # create | update | delete
    project_id: int
    name: str
    request_id: str
    created: float
    starts: float
    ends: float
    error: str | None = None
    settled: bool = False

    def state(self, now: float) -> str:
        if now < self.starts:
            return "NEW"
        if now < self.ends:
            return "RUNNING"
        return "ERROR" if self.error else "FINISHED"

    def view(self, now: float, sparse: bool = False) -> dict[str, Any]:
        state = self.state(now)
        done = state in ("FINISHED", "ERROR")
        created = (
            {"inference_instances": [self.name]}
            if self.kind == "create" and state == "FINISHED"
            else None
        )
        return {
            "id": self.id,
            "state": state,
            "task_type": TASK_TYPES[self.kind],
            "user_id": 1,
            "client_id": 1,
            "user_client_id": None,
            "project_id": None if sparse else self.project_id,
            "region_id": None,
            "request_id": self.request_id,
            "created_on": iso(self.created),
            "updated_on": iso(
                min(now, self.ends) if done else max(self.created, min(now, self.starts))
            ),
            "finished_on": iso(self.ends) if done else None,
            "error": self.error if state == "ERROR" else None,
            "created_resources": created,
            "data": {"name": self.name, "project_id": self.project_id},
            "acknowledged_at": None,
            "acknowledged_by": None,
            "detailed_state": None,
            "job_id": None,
            "lifecycle_policy_id": None,
            "schedule_id": None,
        }


@dataclass
class Deployment:
    project_id: int
    name: str
    spec: dict[str, Any]  # the request shape, only the fields sent (never `name`)
    created: float
    task_id: str  # the task of the operation in force
    rollout_start: float  # when containers started (or will start) coming up
    previous_spec: dict[str, Any] | None = None  # restored if an update task fails
    stopped: bool = False
    deleting: bool = False
    # the parent managing it (`[{kind: "AppDeployment", name}]`); empty when standalone
    object_references: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Cloud:
    """The simulated deployments and tasks. Thread-safe: one lock around every operation."""

    config: SimulatorConfig
    clock: Clock = time.time
    deployments: dict[tuple[int, str], Deployment] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    objects: ObjectStore = field(default_factory=ObjectStore)  # credentials, secrets, API keys
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        faults = self.config.faults
        self._error_re = re.compile(faults.task_error_image) if faults.task_error_image else None
        self._stuck_re = re.compile(faults.stuck_image) if faults.stuck_image else None
        if self.config.state_file and Path(self.config.state_file).exists():
            self._load(Path(self.config.state_file))

    # -- lifecycle -------------------------------------------------------------------------

    def settle(self) -> None:
        """Apply the effects of tasks that have ended, oldest first."""
        now = self.clock()
        changed = False
        ended = [t for t in self.tasks.values() if not t.settled and t.ends <= now]
        for task in sorted(ended, key=lambda t: t.ends):
            task.settled = True
            changed = True
            dep = self.deployments.get((task.project_id, task.name))
            if dep is None or dep.task_id != task.id:
                continue
            if task.kind == "delete" or (task.kind == "create" and task.error):
                del self.deployments[(task.project_id, task.name)]
            elif task.kind == "update" and task.error and dep.previous_spec is not None:
                dep.spec = dep.previous_spec
                dep.previous_spec = None
        horizon = now - TASK_RETENTION_SECONDS
        for task_id in [t.id for t in self.tasks.values() if t.settled and t.ends < horizon]:
            del self.tasks[task_id]
        if changed:
            self.save()

    def _new_task(
        self, kind: str, project_id: int, name: str, request_id: str, error: str | None
    ) -> Task:
        now = self.clock()
        timings = self.config.timings
        run = timings.delete if kind == "delete" else timings.task_run
        task = Task(
            id=str(uuid.uuid4()),
            kind=kind,
            project_id=project_id,
            name=name,
            request_id=request_id,
            created=now,
            starts=now + timings.task_queue,
            ends=now + timings.task_queue + run,
            error=error,
        )
        self.tasks[task.id] = task
        return task

    def _image_error(self, image: str) -> str | None:
        if self._error_re and self._error_re.search(image):
            return f"Failed to deploy image {image!r}: manifest unknown or access denied"
        return None

    def _phase(self, dep: Deployment, now: float) -> tuple[str, bool, float, str | None]:
        """(status, containers created, fraction of replicas ready, container error) at `now`."""
        task = self.tasks.get(dep.task_id)
        created = task is None or task.kind != "create" or task.state(now) == "FINISHED"
        if dep.deleting:
            return "DELETING", created, 0.0, None
        if dep.stopped:
            return "DISABLED", created, 0.0, None
        if not created:
            return "DEPLOYING", False, 0.0, None
        if now < dep.rollout_start:
            return "PARTIALLYDEPLOYED", True, 0.0, None
        image = dep.spec["image"]
        if self._stuck_re and self._stuck_re.search(image):
            error = f'Back-off pulling image "{image}": ErrImagePull: failed to resolve reference'
            return "PARTIALLYDEPLOYED", True, 0.0, error
        if all(c["scale"]["min"] == 0 for c in dep.spec["containers"]):
            return "PENDING", True, 1.0, None
        rollout = self.config.timings.rollout
        progress = 1.0 if rollout <= 0 else (now - dep.rollout_start) / rollout
        if progress < 1.0:
            return "PARTIALLYDEPLOYED", True, progress, None
        return "ACTIVE", True, 1.0, None

    def view(self, dep: Deployment) -> dict[str, Any]:
        status, created, ready_fraction, error = self._phase(dep, self.clock())
        host = f"{dep.name}-{dep.project_id}.inference.sim.local"
        running = status not in ("DEPLOYING", "DISABLED", "DELETING")
        containers = []
        for c in dep.spec["containers"]:
            total = c["scale"]["min"] if running else 0
            containers.append(
                {
                    "address": f"https://r{c['region_id']}-{host}" if created else None,
                    "deploy_status": {"ready": math.floor(total * ready_fraction), "total": total},
                    "error_message": error,
                }
            )
        return deployment_view(
            dep.project_id,
            dep.name,
            dep.spec,
            status=status,
            created_at=iso(dep.created) + "Z",
            address=f"https://{host}" if created else None,
            containers=containers,
            object_references=dep.object_references,
            sparse=self.config.sparse_answers,
        )

    # -- operations ------------------------------------------------------------------------

    def get(self, project_id: int, name: str) -> Deployment:
        dep = self.deployments.get((project_id, name))
        if dep is None:
            raise CloudError(404, "NotFoundError", f"Inference deployment {name!r} not found")
        return dep

    def in_project(self, project_id: int) -> list[Deployment]:
        deps = [d for (p, _), d in self.deployments.items() if p == project_id]
        return sorted(deps, key=lambda d: (d.created, d.name))

    def create(
        self,
        project_id: int,
        spec: dict[str, Any],
        request_id: str,
        object_references: list[dict[str, str]] | None = None,
    ) -> Task:
        """Create a deployment; `object_references` makes it one managed by a parent (as an
        inference Application's deployments are): tests seed those through here."""
        name = spec.pop("name")
        if (project_id, name) in self.deployments:
            raise CloudError(409, "ConflictError", f"Inference deployment {name!r} already exists")
        check_references(self.objects, project_id, spec)
        task = self._new_task(
            "create", project_id, name, request_id, self._image_error(spec["image"])
        )
        self.deployments[(project_id, name)] = Deployment(
            project_id=project_id,
            name=name,
            spec=spec,
            created=task.created,
            task_id=task.id,
            rollout_start=task.ends,
            object_references=list(object_references or []),
        )
        self.save()
        return task

    def _mutable(self, project_id: int, name: str) -> Deployment:
        dep = self.get(project_id, name)
        if dep.deleting:
            raise CloudError(
                409, "ConflictError", f"Inference deployment {name!r} is being deleted"
            )
        return dep

    def update(self, project_id: int, name: str, changes: dict[str, Any], request_id: str) -> Task:
        dep = self._mutable(project_id, name)
        previous = json.loads(json.dumps(dep.spec))
        spec = dict(dep.spec)
        for key, value in changes.items():
            if value is None:
                spec.pop(key, None)  # null resets a field to the server's default
            elif self.config.patch_merge and key in MERGED_FIELDS and spec.get(key):
                spec[key] = merged(spec[key], value)
            else:
                spec[key] = value
        if self.config.patch_merge:
            _check_merged(spec)
        if changes.get("api_keys") is not None:
            spec.pop("auth_enabled", None)
        if "auth_enabled" in changes:
            spec.pop("api_keys", None)
        check_references(self.objects, project_id, spec)
        task = self._new_task(
            "update", project_id, name, request_id, self._image_error(spec["image"])
        )
        dep.spec = spec
        dep.previous_spec = previous
        dep.task_id = task.id
        dep.rollout_start = task.ends
        self.save()
        return task

    def delete(self, project_id: int, name: str, request_id: str) -> Task:
        dep = self._mutable(project_id, name)
        task = self._new_task("delete", project_id, name, request_id, None)
        dep.deleting = True
        dep.task_id = task.id
        self.save()
        return task

    def stop(self, project_id: int, name: str) -> None:
        dep = self._mutable(project_id, name)
        dep.stopped = True
        self.save()

    def start(self, project_id: int, name: str) -> None:
        dep = self._mutable(project_id, name)
        if dep.stopped:
            dep.stopped = False
            dep.rollout_start = max(self.clock(), dep.rollout_start)
            self.save()

    def list_tasks(
        self,
        *,
        project_ids: set[int],
        states: set[str],
        task_type: str | None,
        since: float | None,
        until: float | None,
        descending: bool,
    ) -> list[dict[str, Any]]:
        now = self.clock()
        sparse = self.config.sparse_answers
        views = []
        for task in sorted(self.tasks.values(), key=lambda t: t.created, reverse=descending):
            # the filter matches the project the task reports (none, with sparse answers)
            if project_ids and (sparse or task.project_id not in project_ids):
                continue
            if task_type and TASK_TYPES[task.kind] != task_type:
                continue
            if since is not None and task.created < since:
                continue
            if until is not None and task.created > until:
                continue
            view = task.view(now, sparse)
            if states and view["state"] not in states:
                continue
            views.append(view)
        return views

    # -- persistence -----------------------------------------------------------------------

    def save(self) -> None:
        path = self.config.state_file
        if not path:
            return
        data = {
            "version": 1,
            "deployments": [asdict(d) for d in self.deployments.values()],
            "tasks": [asdict(t) for t in self.tasks.values()],
            "objects": self.objects.dump(),
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file 0600: the simulated cloud holds what it was sent, envs included
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".sim-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            deployments = [Deployment(**d) for d in data["deployments"]]
            tasks = [Task(**t) for t in data["tasks"]]
            self.objects = ObjectStore.load(data.get("objects") or [])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a simulator state file ({exc})") from exc
        self.deployments = {(d.project_id, d.name): d for d in deployments}
        self.tasks = {t.id: t for t in tasks}
