"""What every verb shares while a plan runs: the API, the store, the clock, the request slots,
the watcher, and one `Attempt` per action (its journal entry, its task IDs, its deadline).

Verbs never open the journal or write a record by hand: they go through these helpers, so the
order (journal first, then the request, then the record) is kept in one place. Every write goes
through `writer`, which commits the writes of actions reaching them at the same moment together.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ..api import ApiClient
from ..clock import Clock
from ..errors import ApiError, NotFoundError
from ..model import DeploymentKey, DesiredDeployment, LiveDeployment, Record, RecordOutcome
from ..plan import Change, applied_record
from ..state import StateStore
from .outcomes import ApplyOptions, Event, Phase, Reporter
from .tasks import Watcher
from .writer import StateWriter

T = TypeVar("T")
log = logging.getLogger("reconciler.execute")


def backoff(attempt: int) -> float:
    """The pause before the (`attempt` + 1)-th resend or re-read: 0.25 s doubling up to 4 s."""
    return float(min(0.25 * 2**attempt, 4.0))


@dataclass
class Attempt:
    """One action in flight."""

    change: Change
    desired: DesiredDeployment | None
    entry: int
    deadline: float
    task_ids: list[str] = field(default_factory=list)
    submitted: bool = False  # the request went through: the record claims ownership
    phase: str = "working"  # what it was doing, for a timeout's message
    applied: Record | None = None  # the record its intent would write (made once, reused)

    @property
    def key(self) -> DeploymentKey:
        return self.change.key

    def wanted(self) -> DesiredDeployment:
        """The desired deployment; only deletes act without one."""
        assert self.desired is not None, f"{self.change.action} of {self.key} needs a manifest"
        return self.desired


@dataclass
class Context:
    api: ApiClient
    store: StateStore
    desired: Mapping[DeploymentKey, DesiredDeployment]
    options: ApplyOptions
    clock: Clock
    report: Reporter
    revision: str | None
    slots: asyncio.Semaphore
    watcher: Watcher
    writer: StateWriter
    task_waits: list[float] = field(default_factory=list)

    async def call(self, request: Callable[[], Awaitable[T]]) -> T:
        """One request, holding one of the `parallelism` slots."""
        async with self.slots:
            return await request()

    def redact(self, text: str) -> str:
        """`text` without the sensitive values the client knows: the API's words (a task's error,
        a container's message, log lines) may echo a secret it was sent."""
        redactor = getattr(self.api, "redact", None)
        return redactor(text) if redactor is not None else text

    def emit(self, attempt: Attempt, phase: Phase, message: str = "", **extra: Any) -> None:
        attempt.phase = message or phase.value
        self.report(Event(attempt.key, attempt.change.action, phase, message, **extra))

    async def retried(self, attempt: Attempt, request: Callable[[], Awaitable[T]]) -> T:
        """A read (or a request the API treats as idempotent) for `attempt`: a transient failure
        that outlasts the client's own retries (a transport error, a 429, a 5xx) is sent again
        after a backoff until the attempt's deadline, then `TimeoutError`. Any other error is
        raised at once."""
        for number in itertools.count():
            try:
                return await self.call(request)
            except ApiError as exc:
                if not exc.temporary:
                    raise
                left = attempt.deadline - self.clock.monotonic()
                if left <= 0:
                    raise TimeoutError from exc
                log.info("%s of %s: sending again (%s)", attempt.change.action, attempt.key, exc)
                await self.clock.sleep(min(backoff(number), left))
        raise AssertionError("unreachable")

    async def find(self, attempt: Attempt) -> LiveDeployment | None:
        """The attempt's deployment as it is now (None when absent), read as `retried` does."""
        key = attempt.key
        try:
            answer = await self.retried(
                attempt, lambda: self.api.get_deployment(key.project_id, key.name)
            )
        except NotFoundError:
            return None
        return LiveDeployment.from_answer(key.project_id, answer.model_dump(mode="json"))

    async def record(self, attempt: Attempt, outcome: RecordOutcome, message: str = "") -> None:
        made = self.record_of(attempt, outcome, message)
        if made is not None:
            await self.writer.save(made)

    def record_of(
        self, attempt: Attempt, outcome: RecordOutcome, message: str = ""
    ) -> Record | None:
        """The record `attempt` writes now: None for a delete (nothing is applied)."""
        if attempt.desired is None:
            return None
        now = self.clock.wall()
        if attempt.applied is not None:  # the intent's record: same body, hashes and revision
            made = replace(attempt.applied, applied_at=now, outcome=outcome, message=message)
        else:
            made = applied_record(
                attempt.desired,
                self.store.hash_value,
                applied_at=now,
                outcome=outcome,
                revision=self.revision,
                message=message,
            )
        return made

    def expired(self, attempt: Attempt) -> bool:
        return self.clock.monotonic() >= attempt.deadline
