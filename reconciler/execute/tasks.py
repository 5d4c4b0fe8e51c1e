"""One watcher for everything in flight: tasks until FINISHED/ERROR, deployments until converged.

Waiting holds no request slot. Every waiter registers an entry with a due time; one loop wakes
at the earliest due time and polls what is due, so a hundred deployments waiting on their tasks
cost about what one does:

- adaptive intervals: an entry is first polled `initial` seconds after it is registered, then
  each interval grows by `factor` up to `cap`, with jitter so polls spread out;
- batching: when `batch_min` or more entries of one kind and one project are waiting, one list
  call (`GET /cloud/v1/tasks?project_id=...`, or the project's deployments list) answers all of
  them instead of one GET each; an entry the list does not show falls back to its own GET;
- every request goes through the caller's slots (the `--parallelism` bound).

A poll that fails is retried at the next interval; `max_errors` failures in a row fail the entry.
A wait may carry a deadline (on the clock's monotonic time): past it, the wait raises
`TimeoutError`. Time is read from, and waited on, the injected `Clock` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from ..api import ApiClient, Task
from ..clock import REAL, Clock
from ..errors import ApiError, NotFoundError
from ..model import DeploymentKey, LiveDeployment

log = logging.getLogger("reconciler.execute.tasks")

T = TypeVar("T")
TASK_LOOKBACK = timedelta(hours=1)


@dataclass(frozen=True)
class PollOptions:
    initial: float = 0.5
    cap: float = 5.0
    factor: float = 1.5
    jitter: float = 0.2
    batch_min: int = 3
    max_errors: int = 5

    def next_interval(self, interval: float) -> float:
        return min(interval * self.factor, self.cap)

    def spread(self, interval: float, rng: random.Random) -> float:
        return interval * (1 + self.jitter * (2 * rng.random() - 1))


class Kind(StrEnum):
    TASK = "task"
    DEPLOYMENT = "deployment"


@dataclass(eq=False)
class _Entry:
    kind: Kind
    project_id: int
    ident: str  # task id, or deployment name
    update: Callable[[Any], bool]  # takes the polled object; true when the wait is over
    future: asyncio.Future[Any]
    due: float
    interval: float
    deadline: float | None = None
    errors: int = 0
    last: Any = field(default=None)


class Watcher:
    """Polls tasks and deployments for all waiters together. Use as an async context manager."""

    def __init__(
        self,
        api: ApiClient,
        slots: asyncio.Semaphore,
        options: PollOptions | None = None,
        *,
        rng: random.Random | None = None,
        clock: Clock = REAL,
    ) -> None:
        self.api = api
        self.clock = clock
        self.slots = slots
        self.options = options or PollOptions()
        self.rng = rng or random.Random()
        self._entries: list[_Entry] = []
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self.polls: defaultdict[str, int] = defaultdict(int)  # request kind -> count

    async def __aenter__(self) -> Watcher:
        self._loop_task = asyncio.create_task(self._run(), name="watcher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for entry in self._entries:
            if not entry.future.done():
                entry.future.cancel()
        self._entries.clear()

    # -- waiting ---------------------------------------------------------------------------

    async def _wait(self, entry: _Entry) -> Any:
        self._entries.append(entry)
        self._wake.set()
        try:
            return await entry.future
        finally:
            if entry in self._entries:
                self._entries.remove(entry)

    def _entry(
        self,
        kind: Kind,
        project_id: int,
        ident: str,
        update: Callable[[Any], bool],
        deadline: float | None,
    ) -> _Entry:
        initial = self.options.initial
        return _Entry(
            kind,
            project_id,
            ident,
            update,
            asyncio.get_running_loop().create_future(),
            due=self._due(initial, deadline),
            interval=initial,
            deadline=deadline,
        )

    def _due(self, interval: float, deadline: float | None) -> float:
        due = self.clock.monotonic() + self.options.spread(interval, self.rng)
        return due if deadline is None else min(due, deadline)

    async def task(
        self,
        project_id: int,
        task_id: str,
        on_change: Callable[[Task], None] | None = None,
        *,
        deadline: float | None = None,
    ) -> Task:
        """Wait until the task is FINISHED or ERROR; return it."""
        seen: list[str] = []

        def update(task: Task) -> bool:
            if on_change and (not seen or seen[-1] != task.state):
                on_change(task)
            seen.append(task.state)
            return task.state.is_terminal

        result: Task = await self._wait(
            self._entry(Kind.TASK, project_id, task_id, update, deadline)
        )
        return result

    async def deployment(
        self,
        key: DeploymentKey,
        done: Callable[[LiveDeployment | None], bool],
        *,
        deadline: float | None = None,
    ) -> LiveDeployment | None:
        """Wait until `done(live)` holds for the deployment (None when it is absent)."""
        result: LiveDeployment | None = await self._wait(
            self._entry(Kind.DEPLOYMENT, key.project_id, key.name, done, deadline)
        )
        return result

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self._entries = [e for e in self._entries if not e.future.done()]
            if not self._entries:
                await self._wake.wait()
                continue
            delay = min(e.due for e in self._entries) - self.clock.monotonic()
            if delay > 0 and await self._woken_within(delay):
                continue  # something new: recompute the earliest due time
            await self._round(self.clock.monotonic())
            await asyncio.sleep(0)  # let the waiters whose wait just ended run

    async def _woken_within(self, delay: float) -> bool:
        """Sleep `delay` on the clock, or less if a new waiter comes; true if one came."""
        woken = asyncio.ensure_future(self._wake.wait())
        slept = asyncio.ensure_future(self.clock.sleep(delay))
        try:
            await asyncio.wait((woken, slept), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (woken, slept):
                waiter.cancel()
        return woken.done() and not woken.cancelled()

    def _expire(self, now: float) -> None:
        for entry in self._entries:
            if entry.deadline is not None and now >= entry.deadline and not entry.future.done():
                entry.future.set_exception(TimeoutError())

    async def _round(self, now: float) -> None:
        self._expire(now)
        due = [e for e in self._entries if e.due <= now and not e.future.done()]
        groups: dict[tuple[Kind, int], list[_Entry]] = defaultdict(list)
        for entry in self._entries:
            if not entry.future.done():
                groups[(entry.kind, entry.project_id)].append(entry)
        calls: list[Awaitable[None]] = []
        for (kind, project_id), waiting in groups.items():
            due_here = [e for e in waiting if e in due]
            if not due_here:
                continue
            if len(waiting) >= self.options.batch_min:
                calls.append(self._poll_batch(kind, project_id, waiting))
            else:
                calls.extend(self._poll_one(e) for e in due_here)
        await asyncio.gather(*calls)

    def _reschedule(self, entry: _Entry) -> None:
        entry.interval = self.options.next_interval(entry.interval)
        entry.due = self._due(entry.interval, entry.deadline)

    def _deliver(self, entry: _Entry, value: Any) -> None:
        if entry.future.done():
            return
        entry.errors = 0
        entry.last = value
        try:
            finished = entry.update(value)
        except Exception as exc:  # a waiter's predicate failed: fail that waiter only
            entry.future.set_exception(exc)
            return
        if finished:
            entry.future.set_result(value)
        else:
            self._reschedule(entry)

    def _failed(self, entry: _Entry, error: ApiError) -> None:
        entry.errors += 1
        if entry.errors >= self.options.max_errors and not entry.future.done():
            entry.future.set_exception(error)
        else:
            log.info("poll of %s %s failed (%s); will retry", entry.kind, entry.ident, error)
            self._reschedule(entry)

    async def _limited(self, kind: str, call: Callable[[], Awaitable[T]]) -> T:
        async with self.slots:
            self.polls[kind] += 1
            return await call()

    async def _poll_one(self, entry: _Entry) -> None:
        try:
            if entry.kind is Kind.TASK:
                value: Any = await self._limited("task get", lambda: self.api.get_task(entry.ident))
            else:
                value = await self._get_deployment(entry.project_id, entry.ident)
        except ApiError as exc:
            if isinstance(exc, NotFoundError) and entry.kind is Kind.TASK:
                if not entry.future.done():
                    entry.future.set_exception(exc)
                return
            self._failed(entry, exc)
            return
        self._deliver(entry, value)

    async def _get_deployment(self, project_id: int, name: str) -> LiveDeployment | None:
        try:
            answer = await self._limited(
                "deployment get", lambda: self.api.get_deployment(project_id, name)
            )
        except NotFoundError:
            return None
        return LiveDeployment.from_answer(project_id, answer.model_dump(mode="json"))

    async def _poll_batch(self, kind: Kind, project_id: int, entries: list[_Entry]) -> None:
        try:
            if kind is Kind.TASK:
                now = datetime.fromtimestamp(self.clock.wall(), UTC)
                since = (now - TASK_LOOKBACK).strftime("%Y-%m-%dT%H:%M:%S")
                tasks = await self._limited(
                    "task list",
                    lambda: self.api.list_tasks(project_ids=[project_id], from_timestamp=since),
                )
                found: dict[str, Any] = {t.id: t for t in tasks}
            else:
                deployments = await self._limited(
                    "deployment list", lambda: self.api.list_deployments(project_id)
                )
                found = {
                    d.name: LiveDeployment.from_answer(project_id, d.model_dump(mode="json"))
                    for d in deployments
                }
        except ApiError as exc:
            for entry in entries:
                self._failed(entry, exc)
            return
        stragglers = []
        for entry in entries:
            if entry.ident in found:
                self._deliver(entry, found[entry.ident])
            elif kind is Kind.DEPLOYMENT:
                self._deliver(entry, None)  # absent from the full list: it is gone
            else:
                stragglers.append(entry)  # not in the window the list covered
        await asyncio.gather(*(self._poll_one(e) for e in stragglers))
