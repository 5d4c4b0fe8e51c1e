"""One watcher for everything in flight: tasks until FINISHED/ERROR, deployments until converged.

Waiting holds no request slot. Every waiter registers an entry; one loop wakes at the earliest
due time and polls what is due, so ten thousand deployments waiting cost about what one does.
Polling follows the server rather than a timer per waiter:

- batching: when `batch_min` or more entries of one kind wait (deployments: of one project), one
  list call (`GET /cloud/v1/tasks?from_timestamp=...`, or the project's deployments list) answers
  all of them; an entry the list does not show falls back to its own GET. Tasks are listed by
  time, not by project, and matched by ID: the SDK types a task's `project_id` as optional, and
  a task without one would escape a project filter (every wait would then fall back to a GET);
  `from_timestamp` carries its timezone;
- a batched list is polled on a short fixed interval (`batch_interval`), not backed off: its cost
  does not grow with the number waiting. It grows with its pages and items, so the interval is
  stretched to keep every list together under one page request per `page_interval` seconds
  and one listed item per `item_interval`;
- only lone entries back off: first polled `initial` seconds after they register, then each
  interval grows by `factor` up to `cap`, with jitter so polls spread out;
- a convergence wait starts at once: its first poll is in the round right after the one that
  saw its task end (a batched list that was polled less than `batch_interval` ago waits for
  its next turn), so a deployment that is already up costs no extra interval;
- only the items someone waits on are parsed: list answers stay plain JSON until matched;
- the task window starts at the oldest waiting task's registration (less `TASK_SKEW` for clock
  differences), so the list holds the tasks in flight, not the whole run's;
- every request goes through the caller's slots (the `--parallelism` bound).

A poll that fails is retried at the next interval. A wait may carry a deadline (on the clock's
monotonic time): past it, the wait raises `TimeoutError`. A transient failure (a transport error,
a 429, a 5xx, each already retried by the client) never ends a wait that has a deadline: only
the deadline does. `max_errors` failures in a row that are not transient (a 4xx, an answer that
does not parse) fail the entry; a wait without a deadline (resume's) counts every failure, so it
cannot outlast an API that stays down. Time is read from, and waited on, the injected `Clock`
only. The timing rules (when each entry or list is next due) are `schedule.py`'s; this module
polls and delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError

from ..api import ApiClient, Deployment, Task
from ..clock import REAL, Clock
from ..errors import ApiError, NotFoundError
from ..model import DeploymentKey, LiveDeployment
from .schedule import Entry, Group, Kind, PollOptions, Schedule

log = logging.getLogger("reconciler.execute.tasks")

T = TypeVar("T")
TASK_SKEW = timedelta(seconds=60)  # how far the server's clock may run behind ours
TASKS_PATH = "/cloud/v1/tasks"


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
        self._entries: list[Entry] = []
        self.schedule = Schedule(self.options, clock, self.rng)
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

    async def _wait(self, entry: Entry) -> Any:
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
    ) -> Entry:
        initial = self.options.initial
        now = self.clock.monotonic()
        # a task was just created: give it a moment; a deployment is looked at right away
        due = self.schedule.due(initial, deadline) if kind is Kind.TASK else now
        return Entry(
            kind,
            project_id,
            ident,
            update,
            asyncio.get_running_loop().create_future(),
            due=due,
            interval=initial,
            deadline=deadline,
            since=self.clock.wall(),
        )

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
            delay = self.schedule.next_due(self._groups(), self._entries) - self.clock.monotonic()
            if delay > 0 and await self._woken_within(delay):
                continue  # something new: recompute the earliest due time
            try:
                await self._round(self.clock.monotonic())
            except Exception as exc:  # a bug here must fail the waiters, never hang them
                log.exception("the watcher failed")
                for entry in self._entries:
                    if not entry.future.done():
                        entry.future.set_exception(exc)
            await asyncio.sleep(0)  # let the waiters whose wait just ended run

    def _groups(self) -> dict[Group, list[Entry]]:
        groups: dict[Group, list[Entry]] = defaultdict(list)
        for entry in self._entries:
            if not entry.future.done():
                groups[entry.group].append(entry)
        return groups

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
        groups = self._groups()
        calls: list[Awaitable[None]] = []
        for group, waiting in groups.items():
            if self.schedule.batched(waiting):
                if self.schedule.list_due(group, waiting) <= now:
                    calls.append(self._poll_batch(group, waiting))
            else:
                calls.extend(self._poll_one(e) for e in waiting if e.due <= now)
        await asyncio.gather(*calls)
        self.schedule.schedule_lists(groups)

    def _deliver(self, entry: Entry, value: Any) -> None:
        if entry.future.done():
            return
        entry.errors = 0
        try:
            finished = entry.update(value)
        except Exception as exc:  # a waiter's predicate failed: fail that waiter only
            entry.future.set_exception(exc)
            return
        if finished:
            entry.future.set_result(value)
        else:
            self.schedule.reschedule(entry)

    def _failed(self, entry: Entry, error: ApiError) -> None:
        if not (error.temporary and entry.deadline is not None):
            entry.errors += 1  # a transient failure ends a wait only at its deadline
        if entry.errors >= self.options.max_errors and not entry.future.done():
            entry.future.set_exception(error)
        else:
            log.info("poll of %s %s failed (%s); will retry", entry.kind, entry.ident, error)
            self.schedule.reschedule(entry)

    async def _limited(self, kind: str, call: Callable[[], Awaitable[T]]) -> T:
        async with self.slots:
            self.polls[kind] += 1
            return await call()

    async def _poll_one(self, entry: Entry) -> None:
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

    async def _poll_batch(self, group: Group, entries: list[Entry]) -> None:
        kind, project_id = group
        key = "id" if kind is Kind.TASK else "name"
        wanted = {e.ident for e in entries}
        found: dict[Any, dict[str, Any]] = {}  # only the items waited on: a page's others go
        listed = 0

        def take(answer: Any) -> None:
            nonlocal listed
            listed += 1
            if isinstance(answer, dict) and answer.get(key) in wanted:
                found[answer[key]] = answer

        try:
            if kind is Kind.TASK:
                oldest = datetime.fromtimestamp(min(e.since for e in entries), UTC)
                since = (oldest - TASK_SKEW).isoformat(timespec="seconds")
                pages = await self._limited(
                    "task list", lambda: self.api.each_task_answer(take, from_timestamp=since)
                )
            else:
                pages = await self._limited(
                    "deployment list", lambda: self.api.each_deployment_answer(project_id, take)
                )
        except ApiError as exc:
            for entry in entries:
                self._failed(entry, exc)
            return
        self.schedule.list_pages[group] = pages
        self.schedule.list_items[group] = listed
        stragglers = []
        for entry in entries:
            answer = found.get(entry.ident)
            if answer is not None:
                self._deliver_answer(entry, answer)
            elif kind is Kind.DEPLOYMENT:
                self._deliver(entry, None)  # absent from the full list: it is gone
            else:
                stragglers.append(entry)  # not in the window the list covered
        await asyncio.gather(*(self._poll_one(e) for e in stragglers))

    def _deliver_answer(self, entry: Entry, answer: dict[str, Any]) -> None:
        """Parse the one item this entry waits on, and hand it over."""
        try:
            if entry.kind is Kind.TASK:
                value: Any = Task.model_validate(answer)
            else:
                parsed = Deployment.model_validate(answer)
                value = LiveDeployment.from_answer(entry.project_id, parsed.model_dump(mode="json"))
        except ValidationError as exc:
            what = f"{entry.kind} {entry.ident}"
            message = f"unexpected answer for {what}: {exc.errors()[0]['msg']}"
            self._failed(
                entry,
                ApiError(
                    message,
                    method="GET",
                    path=TASKS_PATH if entry.kind is Kind.TASK else f"deployments/{entry.ident}",
                ),
            )
            return
        self._deliver(entry, value)
