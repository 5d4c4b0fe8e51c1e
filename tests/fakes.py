"""In-process stand-ins for unit tests: an API that answers from dicts, and time that only moves
when something sleeps on it.

`FakeApi` keeps deployments and tasks in memory; `fail` queues an exception (or a callable that
returns one, to act first and then fail, like a lost answer) for the next call of a method, so
a test drives every branch of the executor without a server. `FakeTime` is a clock whose
`sleep` moves it forward at once, so waits of minutes run in microseconds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.api import Deployment, Listing, Task, Unreadable
from reconciler.errors import (
    ApiError,
    ApiTransportError,
    ConflictError,
    NotFoundError,
    ServerError,
)

START = 1_800_000_000.0


class FakeTime:
    """A monotonic and wall clock that jumps ahead by the amount each `sleep` asks for.

    `follower` is moved by the same amount (a simulator's `ManualClock.advance`): the code under
    test and the simulated cloud then share one time, even over real HTTP."""

    def __init__(self, follower: Callable[[float], None] | None = None) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._follower = follower

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return START + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        if self._follower is not None:
            self._follower(max(0.0, seconds))
        await asyncio.sleep(0)

    @property
    def clock(self) -> Any:
        from reconciler.clock import Clock

        return Clock(monotonic=self.monotonic, sleep=self.sleep, wall=self.wall)


def lost(method: str, path: str = "/fake") -> ApiTransportError:
    return ApiTransportError("ReadTimeout", method=method, path=path, maybe_applied=True)


def server_error(method: str, path: str = "/fake") -> ServerError:
    return ServerError(method=method, path=path, status_code=503)


Failure = ApiError | Exception | Callable[[], Exception | None]


class FakeApi:
    """The parts of `ApiClient` the executor, the watcher and resume use."""

    def __init__(self) -> None:
        self.deployments: dict[tuple[int, str], dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.fail: defaultdict[str, list[Failure]] = defaultdict(list)
        self.calls: list[tuple[str, str]] = []
        self.task_state = "FINISHED"  # state a new task starts in
        self.task_error: str | None = None
        self.rollout: dict[str, Any] = {"status": "ACTIVE", "error_message": None}
        self.deleting_reads = 2  # reads a DELETING deployment stays visible before it is gone
        self.lose: defaultdict[str, int] = defaultdict(int)  # act, then lose the answer
        self.patches: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    # -- helpers for tests -----------------------------------------------------------------

    def seed(self, project_id: int, name: str, status: str = "ACTIVE", **fields: Any) -> None:
        body = {
            "image": "nginx:latest",
            "listening_port": 80,
            "flavor_name": "inference-16vcpu-232gib-1xh100-80gb",
            "containers": [{"region_id": 1, "scale": {"min": 1, "max": 2}}],
            **fields,
        }
        self.deployments[(project_id, name)] = self._answer(project_id, name, body, status, None)

    def _answer(
        self, project_id: int, name: str, body: Mapping[str, Any], status: str, error: str | None
    ) -> dict[str, Any]:
        containers = [
            {
                **c,
                "deploy_status": {"ready": 1 if status == "ACTIVE" else 0, "total": 1},
                "error_message": error,
            }
            for c in body.get("containers", [])
        ]
        answer = {k: v for k, v in body.items() if k != "name"}
        if isinstance(answer.get("command"), list):
            answer["command"] = " ".join(answer["command"])
        return {**answer, "name": name, "project_id": project_id, "status": status,
                "containers": containers}  # fmt: skip

    def _new_task(self, project_id: int, kind: str) -> str:
        task_id = f"task-{next(self._ids):04d}"
        self.tasks[task_id] = {
            "id": task_id,
            "state": self.task_state,
            "task_type": kind,
            "project_id": project_id,
            "error": self.task_error if self.task_state == "ERROR" else None,
        }
        return task_id

    def _lost_answer(self, method: str) -> None:
        if self.lose[method] > 0:
            self.lose[method] -= 1
            raise lost(method)

    def _read(self, project_id: int, name: str) -> dict[str, Any] | None:
        """A DELETING deployment is gone after `deleting_reads` reads."""
        found = self.deployments.get((project_id, name))
        if found is not None and found["status"] == "DELETING":
            found["_reads"] = found.get("_reads", 0) + 1
            if found["_reads"] > self.deleting_reads:
                del self.deployments[(project_id, name)]
                return None
        return found

    @staticmethod
    def _model(answer: Mapping[str, Any]) -> Deployment:
        return Deployment.model_validate({k: v for k, v in answer.items() if k != "_reads"})

    def finish_tasks(self, state: str = "FINISHED", error: str | None = None) -> None:
        for task in self.tasks.values():
            if task["state"] not in ("FINISHED", "ERROR"):
                task.update(state=state, error=error)

    def _check(self, method: str, ident: str) -> None:
        self.calls.append((method, ident))
        queue = self.fail.get(method)
        if queue:
            failure = queue.pop(0)
            error = (
                failure() if callable(failure) and not isinstance(failure, Exception) else failure
            )
            if error is not None:
                raise error

    @staticmethod
    def _missing(method: str, path: str) -> NotFoundError:
        return NotFoundError(method=method, path=path, status_code=404)

    # -- the API ---------------------------------------------------------------------------

    async def list_deployments(self, project_id: int) -> Listing[Deployment]:
        self._check("list_deployments", str(project_id))
        found = [self._read(p, n) for (p, n) in sorted(self.deployments) if p == project_id]
        return Listing(self._model(d) for d in found if d is not None)

    async def each_deployment(
        self, project_id: int, take: Callable[[Deployment], object]
    ) -> list[Unreadable]:
        listing = await self.list_deployments(project_id)
        for deployment in listing:
            take(deployment)
        return list(listing.unreadable)

    async def get_deployment(self, project_id: int, name: str) -> Deployment:
        self._check("get_deployment", name)
        found = self._read(project_id, name)
        if found is None:
            raise self._missing("GET", name)
        return self._model(found)

    async def create_deployment(self, project_id: int, body: Mapping[str, Any]) -> list[str]:
        name = str(body["name"])
        self._check("create_deployment", name)
        if (project_id, name) in self.deployments:
            raise ConflictError(method="POST", path=name, status_code=409)
        status, error = self.rollout["status"], self.rollout["error_message"]
        self.deployments[(project_id, name)] = self._answer(project_id, name, body, status, error)
        task = self._new_task(project_id, "create_inference_instance")
        self._lost_answer("create_deployment")
        return [task]

    async def update_deployment(
        self, project_id: int, name: str, changes: Mapping[str, Any]
    ) -> list[str]:
        self._check("update_deployment", name)
        found = self.deployments.get((project_id, name))
        if found is None:
            raise self._missing("PATCH", name)
        self.patches.append(dict(changes))
        merged = {**found, **changes}
        self.deployments[(project_id, name)] = self._answer(
            project_id, name, merged, self.rollout["status"], self.rollout["error_message"]
        )
        task = self._new_task(project_id, "update_inference_instance")
        self._lost_answer("update_deployment")
        return [task]

    async def delete_deployment(self, project_id: int, name: str) -> list[str]:
        self._check("delete_deployment", name)
        found = self.deployments.get((project_id, name))
        if found is None:
            raise self._missing("DELETE", name)
        found["status"] = "DELETING"
        task = self._new_task(project_id, "delete_inference_instance")
        self._lost_answer("delete_deployment")
        return [task]

    async def get_task(self, task_id: str) -> Task:
        self._check("get_task", task_id)
        if task_id not in self.tasks:
            raise self._missing("GET", task_id)
        return Task.model_validate(self.tasks[task_id])

    async def each_task_answer(self, take: Callable[[Any], object], **filters: Any) -> int:
        for task in await self.list_tasks(**filters):
            take(task.model_dump(mode="json"))
        return 1

    async def each_deployment_answer(self, project_id: int, take: Callable[[Any], object]) -> int:
        for found in await self.list_deployments(project_id):
            take(found.model_dump(mode="json"))
        return 1

    async def list_tasks(self, **filters: Any) -> Listing[Task]:
        self._check("list_tasks", "")
        projects = set(filters.get("project_ids") or ())
        return Listing(
            Task.model_validate(t)
            for t in self.tasks.values()
            if not projects or t["project_id"] in projects
        )

    async def start_deployment(self, project_id: int, name: str) -> None:
        self._check("start_deployment", name)

    async def stop_deployment(self, project_id: int, name: str) -> None:
        self._check("stop_deployment", name)
