"""Running a plan: every action as its own coroutine, each journaled, none able to sink another.

What is bounded is requests in flight (`parallelism` slots, shared with the watcher's polls),
not deployments, so a hundred creates are submitted within a few round trips and then waited on
together. Creates, updates and adopts run before deletes. Each action is journaled before its
request is sent and closed with its result; whatever goes wrong inside one action, an API
error, a deadline or a bug, becomes that action's outcome and never loses the others'.

The verbs live one per module; adding one (start, stop) means a module and a line in `VERBS`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from ..api import ApiClient
from ..clock import REAL, Clock
from ..errors import ApiError
from ..model import DeploymentKey, DesiredDeployment, RecordOutcome
from ..plan import Action, Change, Plan
from ..state import StateError, StateStore
from ..textsafe import escape
from .adopt import adopt
from .context import Attempt, Context
from .create import create
from .delete import delete
from .failurelogs import with_logs
from .journal import Intent, JournalResult
from .outcomes import ActionFailed, ApplyOptions, Event, Outcome, Phase, Reporter, Result
from .power import start, stop
from .tasks import Watcher
from .update import update
from .writer import StateWriter

log = logging.getLogger("reconciler.execute")

Verb = Callable[[Context, Attempt], Awaitable[None]]
VERBS: dict[Action, Verb] = {
    Action.CREATE: create,
    Action.UPDATE: update,
    Action.ADOPT: adopt,
    Action.DELETE: delete,
    Action.STOP: stop,
    Action.START: start,
}
LAST = frozenset({Action.DELETE})  # run after every other action has ended


def unchanged_outcomes(plan: Plan) -> list[Outcome]:
    """The unchanged ones too get an outcome: skipped, or failed when the plan blocks them (a
    deployment another object manages, or one whose answer cannot be read)."""
    return [
        Outcome(c.key, c.action, Result.FAILED, error=c.why, reason=c.reason)
        if c.blocked
        else Outcome(c.key, c.action, Result.SKIPPED, reason=c.reason)
        for c in plan.changes
        if not c.action.mutates
    ]


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
        clock: Clock = REAL,
    ) -> None:
        self.api = api
        self.store = store
        self.desired = desired
        self.options = options or ApplyOptions()
        self.report: Reporter = report or (lambda event: None)
        self.revision = revision
        self.clock = clock
        self.task_waits: list[float] = []

    async def run(self, plan: Plan) -> list[Outcome]:
        """Apply every action of `plan`; list an outcome for every deployment in it."""
        acting = [c for c in plan.changes if c.action.mutates]
        first = [c for c in acting if c.action not in LAST]
        last = [c for c in acting if c.action in LAST]
        for change in first + last:
            self.report_phase(change, Phase.QUEUED)
        slots = asyncio.Semaphore(max(1, self.options.parallelism))
        async with (
            self.store.writes() as writes,
            Watcher(self.api, slots, self.options.poll, clock=self.clock) as watcher,
        ):
            ctx = Context(
                self.api,
                self.store,
                self.desired,
                self.options,
                self.clock,
                self.report,
                self.revision,
                slots,
                watcher,
                StateWriter(writes),
                self.task_waits,
            )
            outcomes = list(await asyncio.gather(*(self._one(ctx, c) for c in first)))
            outcomes += await asyncio.gather(*(self._one(ctx, c) for c in last))
        return outcomes + unchanged_outcomes(plan)

    def report_phase(self, change: Change, phase: Phase) -> None:
        self.report(Event(change.key, change.action, phase))

    async def _one(self, ctx: Context, change: Change) -> Outcome:
        started = self.clock.monotonic()
        desired = self.desired.get(change.key)
        intent = Intent.of(
            change.fields, desired, self.store.hash_value, self.revision, self.options.wait
        )
        try:
            entry = await ctx.writer.open(change.key, change.action.value, intent)
        except StateError as exc:  # nothing is sent that is not journaled first
            return self._unjournaled(ctx, change, started, exc)
        attempt = Attempt(change, desired, entry, started + self.options.timeout)
        attempt.applied = intent.record
        try:
            await VERBS[change.action](ctx, attempt)
            waited = self.options.wait or not attempt.submitted
            if change.then is not None and waited:  # a stop or start after the spec change
                await VERBS[change.then](ctx, attempt)
            result, error = (Result.CONVERGED if waited else Result.SUBMITTED), ""
        except TimeoutError:
            result = Result.TIMED_OUT
            error = f"timed out after {self.options.timeout:g}s while {attempt.phase}"
        except ActionFailed as exc:
            result, error = exc.result, exc.message
        except ApiError as exc:
            result, error = Result.FAILED, str(exc)
        except StateError as exc:  # a journal or record write: the next apply resumes it
            result, error = Result.FAILED, f"the state store failed: {exc}"
        except Exception as exc:  # a bug in one action must not lose the others' outcomes
            log.exception("%s of %s failed unexpectedly", change.action.value, change.key)
            result, error = Result.FAILED, f"internal error: {type(exc).__name__}: {exc}"
        error = escape(error)  # the API's words (a task's error, a refusal) may hold anything
        if result is not Result.CONVERGED and change.action is not Action.DELETE:
            error = await with_logs(ctx, change.key, error)
        error = ctx.redact(error)
        try:
            await self._close(ctx, attempt, result, error)
        except StateError as exc:  # the journal keeps it open: the next apply settles it
            unrecorded = escape(ctx.redact(f"its result was not recorded: {exc}"))
            first, newline, logs = error.partition("\n")  # the pods' log lines come last
            error = (
                f"{first}; {unrecorded}{newline}{logs}"
                if error
                else f"{result.value}, but {unrecorded}"
            )
            result = Result.FAILED if result is Result.CONVERGED else result
        outcome = Outcome(
            change.key,
            change.action,
            result,
            tuple(attempt.task_ids),
            error,
            self.clock.monotonic() - started,
        )
        ctx.emit(attempt, Phase(result.value), error, outcome=outcome)
        return outcome

    def _unjournaled(
        self, ctx: Context, change: Change, started: float, exc: StateError
    ) -> Outcome:
        """The outcome of an action whose intent could not be journaled: never sent."""
        error = escape(ctx.redact(f"not sent: its journal entry could not be written: {exc}"))
        outcome = Outcome(
            change.key, change.action, Result.FAILED, (), error, self.clock.monotonic() - started
        )
        self.report(Event(change.key, change.action, Phase.FAILED, error, outcome=outcome))
        return outcome

    async def _close(self, ctx: Context, attempt: Attempt, result: Result, error: str) -> None:
        """Close the journal entry; on failure, note it on the record of what we own."""
        if result is Result.SUBMITTED:
            return  # not waited for: the entry stays open for the next apply to follow up
        await ctx.writer.close(attempt.entry, JournalResult(result.value), error)
        if result is Result.CONVERGED or attempt.change.action is Action.DELETE:
            return
        if attempt.submitted or attempt.change.action is not Action.CREATE:
            await ctx.record(attempt, RecordOutcome(result.value), error)
