"""The executor: the only stage that changes the world.

Every action runs as its own coroutine, all at once; what is bounded is requests in flight
(`parallelism` slots, shared with the watcher's polls), not deployments, so a hundred creates
are all submitted within a few round trips and then waited on together.

For each action, write-ahead (DESIGN.md §5):
1. journal the intent (with the record to write, so a crash can still claim ownership);
2. send the mutating request; journal the task IDs it returns and record ownership at once;
3. wait for the tasks (ERROR fails this deployment, with the task's error);
4. wait for convergence: Healthy; Degraded that lasts `degraded_grace` fails with the containers'
   errors; the deadline (`timeout`) ends the wait saying which phase it was stuck in;
5. record the outcome and the new last-applied spec; close the journal entry.

A mutating request is never blindly sent twice: after a lost answer or a 5xx the deployment is
read first; a create answered 409 is verified and adopted. Creates, updates and adopts run
before deletes. One failure never stops the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from .api import ApiClient, Task
from .diff import RESET_VALUES, diff
from .errors import ApiError, ApiTransportError, ConflictError, NotFoundError, ServerError
from .health import Health, degraded_message, health_of, readiness
from .model import DeploymentKey, DesiredDeployment, LiveDeployment
from .plan import Action, Change, Plan, applied_record
from .state import StateStore
from .tasks import PollOptions, Watcher

T = TypeVar("T")
MUTATION_ATTEMPTS = 5  # sends of one mutating request, each after checking the last did nothing


def _backoff(attempt: int) -> float:
    return float(min(0.25 * 2**attempt, 4.0))


@dataclass(frozen=True)
class ApplyOptions:
    parallelism: int = 16
    timeout: float = 900.0
    degraded_grace: float = 60.0
    poll: PollOptions = field(default_factory=PollOptions)


class Result(StrEnum):
    CONVERGED = "converged"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"

    @property
    def ok(self) -> bool:
        return self in (Result.CONVERGED, Result.SKIPPED)


@dataclass(frozen=True)
class Outcome:
    key: DeploymentKey
    action: Action
    result: Result
    task_ids: tuple[str, ...] = ()
    error: str = ""
    seconds: float = 0.0
    reason: str = ""  # the plan's reason, for skipped (unchanged) deployments


@dataclass(frozen=True)
class Event:
    """A phase change of one deployment, for progress output."""

    key: DeploymentKey
    action: Action
    phase: str  # queued, submitted, task, deploying, converged, failed, ...
    message: str = ""
    ready: int = 0
    total: int = 0
    outcome: Outcome | None = None


class Reporter(Protocol):
    def __call__(self, event: Event) -> None: ...


class ActionFailed(Exception):
    def __init__(self, message: str, result: Result = Result.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.result = result


def _intent(
    desired: DesiredDeployment | None,
    hasher: Callable[[Any], str],
    fields: tuple[str, ...],
    revision: str | None,
) -> dict[str, Any]:
    """What the journal keeps of an action: enough to write its record after a crash.

    The record part is `applied_record`'s own result, so a resumed record is the same one a
    finished apply would have written."""
    if desired is None:
        return {"fields": list(fields)}
    record = applied_record(desired, hasher, applied_at=0.0, outcome="", revision=revision)
    return {
        "fields": list(fields),
        "last_applied": dict(record.last_applied),
        "sensitive_paths": [list(p) for p in sorted(record.sensitive_paths, key=str)],
        "labels": dict(record.labels),
        "annotations": dict(record.annotations),
        "revision": record.revision,
    }


class Executor:
    def __init__(
        self,
        api: ApiClient,
        store: StateStore,
        desired: Mapping[DeploymentKey, DesiredDeployment],
        options: ApplyOptions | None = None,
        *,
        report: Reporter | None = None,
        revision: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.store = store
        self.desired = desired
        self.options = options or ApplyOptions()
        self.report: Reporter = report or (lambda event: None)
        self.revision = revision
        self.clock = clock
        self.slots = asyncio.Semaphore(max(1, self.options.parallelism))
        self._phase: dict[DeploymentKey, str] = {}
        self._deadline: dict[DeploymentKey, float] = {}
        self.task_waits: list[float] = []
        self._watcher: Watcher | None = None

    # -- plumbing --------------------------------------------------------------------------

    @property
    def watcher(self) -> Watcher:
        assert self._watcher is not None, "use the executor inside `async with executor.watching()`"
        return self._watcher

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        async with self.slots:
            return await request()

    def _emit(self, change: Change, phase: str, message: str = "", **extra: Any) -> None:
        self._phase[change.key] = message or phase
        self.report(Event(change.key, change.action, phase, message, **extra))

    async def _find(self, key: DeploymentKey) -> LiveDeployment | None:
        try:
            answer = await self._call(lambda: self.api.get_deployment(key.project_id, key.name))
        except NotFoundError:
            return None
        return LiveDeployment.from_answer(key.project_id, answer.model_dump(mode="json"))

    def _record(self, desired: DesiredDeployment, outcome: str, message: str = "") -> None:
        self.store.save_record(
            applied_record(
                desired,
                self.store.hash_value,
                applied_at=self.clock(),
                outcome=outcome,
                revision=self.revision,
                message=message,
            )
        )

    # -- running a plan --------------------------------------------------------------------

    async def run(self, plan: Plan) -> list[Outcome]:
        """Apply every action of `plan`; creates, updates and adopts first, then deletes."""
        first = [
            c for c in plan.changes if c.action in (Action.CREATE, Action.UPDATE, Action.ADOPT)
        ]
        last = [c for c in plan.changes if c.action is Action.DELETE]
        for change in first + last:
            self._emit(change, "queued")
        async with Watcher(self.api, self.slots, self.options.poll) as watcher:
            self._watcher = watcher
            outcomes = list(await asyncio.gather(*(self._one(c) for c in first)))
            outcomes += await asyncio.gather(*(self._one(c) for c in last))
        # every deployment gets an outcome: the unchanged ones too
        outcomes += [
            Outcome(c.key, c.action, Result.SKIPPED, error="", seconds=0.0, reason=c.reason)
            for c in plan.changes
            if not c.action.mutates
        ]
        return outcomes

    async def _one(self, change: Change) -> Outcome:
        started = time.monotonic()
        task_ids: list[str] = []
        self._deadline[change.key] = asyncio.get_running_loop().time() + self.options.timeout
        try:  # the deadline is enforced inside `_journaled`, around the work
            if change.action is Action.CREATE:
                await self._create(change, task_ids)
            elif change.action in (Action.UPDATE, Action.ADOPT):
                await self._update(change, task_ids)
            else:
                await self._delete(change, task_ids)
            result, error = Result.CONVERGED, ""
        except TimeoutError:
            phase = self._phase.get(change.key, "working")
            result = Result.TIMED_OUT
            error = f"timed out after {self.options.timeout:g}s while {phase}"
        except ActionFailed as exc:
            result, error = exc.result, exc.message
        except ApiError as exc:
            result, error = Result.FAILED, str(exc)
        outcome = Outcome(
            change.key,
            change.action,
            result,
            tuple(task_ids),
            error,
            time.monotonic() - started,
        )
        self._emit(change, result.value, error, outcome=outcome)
        return outcome

    async def _journaled(
        self, change: Change, task_ids: list[str], work: Callable[[int], Awaitable[None]]
    ) -> None:
        desired = self.desired.get(change.key)
        intent = _intent(desired, self.store.hash_value, change.fields, self.revision)
        entry = self.store.journal_intent(change.key, change.action.value, intent)
        try:
            async with asyncio.timeout_at(self._deadline[change.key]):
                await work(entry)
        except ActionFailed as exc:
            self.store.journal_done(entry, exc.result.value, exc.message)
            if desired is not None:
                self._record(desired, exc.result.value, exc.message)
            raise
        except ApiError as exc:
            self.store.journal_done(entry, Result.FAILED.value, str(exc))
            if desired is not None and change.action is not Action.CREATE:
                self._record(desired, Result.FAILED.value, str(exc))
            raise
        except TimeoutError:
            phase = self._phase.get(change.key, "working")
            message = f"timed out while {phase}"
            self.store.journal_done(entry, Result.TIMED_OUT.value, message)
            if desired is not None:
                self._record(desired, Result.TIMED_OUT.value, message)
            raise
        self.store.journal_done(entry, Result.CONVERGED.value)

    def _submitted(self, change: Change, entry: int, tasks: list[str], task_ids: list[str]) -> None:
        task_ids.extend(tasks)
        self.store.journal_tasks(entry, tasks)
        desired = self.desired.get(change.key)
        if desired is not None:
            self._record(desired, "applying")
        self._emit(change, "submitted", f"task {', '.join(tasks)}" if tasks else "submitted")

    # -- create ----------------------------------------------------------------------------

    async def _create(self, change: Change, task_ids: list[str]) -> None:
        desired = self.desired[change.key]
        key = change.key
        body = {"name": key.name, **desired.spec.body()}

        async def work(entry: int) -> None:
            self._emit(change, "submitting", "creating")
            for attempt in range(MUTATION_ATTEMPTS):
                try:
                    tasks = await self._call(
                        lambda: self.api.create_deployment(key.project_id, body)
                    )
                    break
                except ConflictError:
                    live = await self._find(key)
                    if live is not None and live.status == "DELETING":
                        # an old deployment of that name is going away: create once it is gone
                        self._emit(change, "submitting", "waiting for the old one to be deleted")
                        await self.watcher.deployment(key, lambda found: found is None)
                        continue
                    await self._adopt_existing(change, entry, task_ids)
                    return
                except (ApiTransportError, ServerError) as exc:
                    # the create may have happened: look before sending it again
                    if await self._find(key) is not None:
                        self._submitted(change, entry, [], task_ids)
                        await self._converge(change, expect_present=True)
                        self._record(desired, Result.CONVERGED.value)
                        return
                    if attempt == MUTATION_ATTEMPTS - 1:
                        raise
                    self._emit(change, "submitting", f"create not applied ({exc}); retrying")
                    await asyncio.sleep(_backoff(attempt))
            self._submitted(change, entry, tasks, task_ids)
            await self._wait_tasks(change, tasks)
            await self._converge(change, expect_present=True)
            self._record(desired, Result.CONVERGED.value)

        await self._journaled(change, task_ids, work)

    async def _adopt_existing(self, change: Change, entry: int, task_ids: list[str]) -> None:
        """A create answered 409: the deployment exists (a lost answer, a race). Take it."""
        desired = self.desired[change.key]
        live = await self._find(change.key)
        if live is None:
            raise ActionFailed("create answered 409 Conflict, yet the deployment is not there")
        self._emit(change, "adopting", "exists already: adopting")
        changes = diff(desired.spec.body(), live.spec_view, sensitive=desired.sensitive_paths)
        tasks: list[str] = []
        if changes:
            fields = sorted({c.path.split(".", 1)[0].split("[", 1)[0] for c in changes})
            tasks = await self._patch(change, fields)
        self._submitted(change, entry, tasks, task_ids)
        await self._wait_tasks(change, tasks)
        await self._converge(change, expect_present=True)
        self._record(desired, Result.CONVERGED.value)

    # -- update and adopt ------------------------------------------------------------------

    async def _patch(self, change: Change, fields: list[str] | tuple[str, ...]) -> list[str]:
        desired = self.desired[change.key]
        body = desired.spec.body()
        patch = {f: body[f] if f in body else RESET_VALUES.get(f) for f in fields}
        key = change.key
        for attempt in range(MUTATION_ATTEMPTS):
            try:
                return await self._call(
                    lambda: self.api.update_deployment(key.project_id, key.name, patch)
                )
            except (ApiTransportError, ServerError) as exc:
                live = await self._find(key)
                if live is None:
                    raise ActionFailed(
                        f"the deployment disappeared during the update ({exc})"
                    ) from None
                if not diff(body, live.spec_view, sensitive=desired.sensitive_paths):
                    return []  # the update took effect; its task ID was lost with the answer
                if attempt == MUTATION_ATTEMPTS - 1:
                    raise
                self._emit(change, "submitting", f"update not applied ({exc}); retrying")
                await asyncio.sleep(_backoff(attempt))
        raise AssertionError("unreachable")

    async def _update(self, change: Change, task_ids: list[str]) -> None:
        desired = self.desired[change.key]

        async def work(entry: int) -> None:
            if change.action is Action.ADOPT:
                self._record(desired, "adopting")
            tasks: list[str] = []
            if change.fields:
                self._emit(change, "submitting", f"updating {', '.join(change.fields)}")
                tasks = await self._patch(change, change.fields)
            self._submitted(change, entry, tasks, task_ids)
            await self._wait_tasks(change, tasks)
            await self._converge(change, expect_present=True)
            self._record(desired, Result.CONVERGED.value)

        await self._journaled(change, task_ids, work)

    # -- delete ----------------------------------------------------------------------------

    async def _delete(self, change: Change, task_ids: list[str]) -> None:
        key = change.key

        async def work(entry: int) -> None:
            tasks: list[str] = []
            for attempt in range(MUTATION_ATTEMPTS):
                live = await self._find(key)
                if live is None or live.status == "DELETING":
                    break  # gone, or going: nothing to send
                self._emit(change, "submitting", "deleting")
                try:
                    tasks = await self._call(
                        lambda: self.api.delete_deployment(key.project_id, key.name)
                    )
                    break
                except NotFoundError:
                    break
                except (ApiTransportError, ServerError) as exc:
                    if attempt == MUTATION_ATTEMPTS - 1:
                        raise
                    self._emit(change, "submitting", f"delete not confirmed ({exc}); checking")
                    await asyncio.sleep(_backoff(attempt))
            task_ids.extend(tasks)
            self.store.journal_tasks(entry, tasks)
            self._emit(change, "submitted", f"task {', '.join(tasks)}" if tasks else "deleting")
            await self._wait_tasks(change, tasks)
            self._emit(change, "deleting", "waiting until it is gone")
            await self.watcher.deployment(key, lambda live: live is None)
            self.store.forget(key)

        await self._journaled(change, task_ids, work)

    # -- waiting ---------------------------------------------------------------------------

    async def _wait_tasks(self, change: Change, tasks: list[str]) -> None:
        def on_change(task: Task) -> None:
            self._emit(change, "task", f"waiting for task {task.id[:8]} ({task.state})")

        for task_id in tasks:
            self._emit(change, "task", f"waiting for task {task_id[:8]}")
            started = time.monotonic()
            task = await self.watcher.task(change.key.project_id, task_id, on_change)
            self.task_waits.append(time.monotonic() - started)
            if task.state == "ERROR":
                raise ActionFailed(f"task {task_id} failed: {task.error or 'no error text'}")

    async def _converge(self, change: Change, *, expect_present: bool) -> LiveDeployment | None:
        degraded_since: list[float] = []
        last_ready: list[tuple[int, int]] = []

        def done(live: LiveDeployment | None) -> bool:
            health = health_of(live)
            ready, total = readiness(live)
            if (ready, total) not in last_ready[-1:] or not last_ready:
                last_ready.append((ready, total))
                status = live.status if live else "absent"
                self._emit(
                    change,
                    "deploying",
                    f"{ready}/{total} ready ({status})",
                    ready=ready,
                    total=total,
                )
            if health is Health.DEGRADED and live is not None:
                now = time.monotonic()
                degraded_since.append(now)
                self._phase[change.key] = f"Degraded: {degraded_message(live)}"
                return now - degraded_since[0] >= self.options.degraded_grace
            degraded_since.clear()
            if health is Health.MISSING:
                return expect_present
            return health.is_terminal

        live = await self.watcher.deployment(change.key, done)
        health = health_of(live)
        if live is None or health is Health.MISSING:
            raise ActionFailed("the deployment disappeared while deploying")
        if health is Health.DEGRADED:
            raise ActionFailed(f"Degraded: {degraded_message(live)}")
        return live
