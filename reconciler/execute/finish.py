"""The one ending every verb shares: submitted -> tasks -> converge -> record.

`submitted` journals the task IDs and claims ownership at once (a crash after this point is
resumed from the tasks); the tasks are waited on together by the watcher (ERROR fails this
deployment with the task's error); convergence waits for Healthy, and a Degraded that lasts
`degraded_grace` fails with the containers' errors. A delete converges when the deployment is
gone, and its record is forgotten instead of written.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..api import Task
from ..health import Health, degraded_message, health_of, readiness
from ..model import LiveDeployment, RecordOutcome
from ..plan import Action
from .context import Attempt, Context
from .outcomes import ActionFailed, Phase


async def finish(ctx: Context, attempt: Attempt, tasks: Sequence[str]) -> None:
    await submitted(ctx, attempt, tasks)
    if not ctx.options.wait:
        return  # --no-wait: the journal entry stays open; the next apply resumes it
    await wait_tasks(ctx, attempt, tasks)
    if attempt.change.action is Action.DELETE:
        ctx.emit(attempt, Phase.DELETING, "waiting until it is gone")
        await ctx.watcher.deployment(
            attempt.key, lambda live: live is None, deadline=attempt.deadline
        )
        await ctx.writer.forget(attempt.key)
        return
    await converge(ctx, attempt)
    await ctx.record(attempt, RecordOutcome.CONVERGED)


async def submitted(ctx: Context, attempt: Attempt, tasks: Sequence[str]) -> None:
    """The task IDs journaled and, but for a delete, the record claiming ownership: together."""
    attempt.task_ids.extend(tasks)
    attempt.submitted = True
    claim = ctx.record_of(attempt, RecordOutcome.APPLYING)
    await ctx.writer.submitted(attempt.entry, tasks, claim)
    ctx.emit(attempt, Phase.SUBMITTED, f"task {', '.join(tasks)}" if tasks else "submitted")


async def wait_tasks(ctx: Context, attempt: Attempt, tasks: Sequence[str]) -> None:
    def on_change(task: Task) -> None:
        ctx.emit(attempt, Phase.TASK, f"waiting for task {task.id[:8]} ({task.state})")

    for task_id in tasks:
        if task_id not in attempt.task_ids:  # an earlier PATCH's: the outcome names it too
            attempt.task_ids.append(task_id)
        ctx.emit(attempt, Phase.TASK, f"waiting for task {task_id[:8]}")
        started = ctx.clock.monotonic()
        task = await ctx.watcher.task(
            attempt.key.project_id, task_id, on_change, deadline=attempt.deadline
        )
        ctx.task_waits.append(ctx.clock.monotonic() - started)
        if not task.state.succeeded:
            raise ActionFailed(f"task {task_id} failed: {task.error or 'no error text'}")


async def converge(ctx: Context, attempt: Attempt) -> LiveDeployment:
    """Wait until the deployment is Healthy (or Suspended); fail on a lasting Degraded."""
    degraded_since: list[float] = []
    last_ready: list[tuple[int, int]] = []

    def done(live: LiveDeployment | None) -> bool:
        health = health_of(live)
        ready, total = readiness(live)
        if (ready, total) not in last_ready[-1:]:
            last_ready.append((ready, total))
            status = live.status if live else "absent"
            ctx.emit(
                attempt,
                Phase.DEPLOYING,
                f"{ready}/{total} ready ({status})",
                ready=ready,
                total=total,
            )
        if health is Health.DEGRADED and live is not None:
            now = ctx.clock.monotonic()
            degraded_since.append(now)
            attempt.phase = ctx.redact(f"Degraded: {degraded_message(live)}")
            return now - degraded_since[0] >= ctx.options.degraded_grace
        degraded_since.clear()
        return health.is_terminal

    live = await ctx.watcher.deployment(attempt.key, done, deadline=attempt.deadline)
    health = health_of(live)
    if live is None or health is Health.MISSING:
        raise ActionFailed("the deployment disappeared while deploying")
    if health is Health.DEGRADED:
        raise ActionFailed(f"Degraded: {degraded_message(live)}")
    return live
