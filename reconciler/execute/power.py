"""Stop and start (DESIGN.md §6b): `POST …/stop` and `POST …/start`, no body, no task.

A stop is done when the deployment reads DISABLED (Suspended is its healthy state); a start is
done when it is Healthy again (Degraded for longer than the grace fails it, as for a create).
Both are idempotent on the API side, so one that failed transiently (a lost answer, a 5xx) is
simply sent again until it is answered or the deadline passes (`Context.retried`); the wait that
follows reads the deployment's state, and the same deadline bounds it.
"""

from __future__ import annotations

from ..health import Health, degraded_message, health_of
from ..model import LiveDeployment, RecordOutcome
from .context import Attempt, Context
from .finish import submitted
from .outcomes import ActionFailed, Phase


async def stop(ctx: Context, attempt: Attempt) -> None:
    await power(ctx, attempt, start=False)
    await ctx.record(attempt, RecordOutcome.CONVERGED)


async def start(ctx: Context, attempt: Attempt) -> None:
    await power(ctx, attempt, start=True)
    await ctx.record(attempt, RecordOutcome.CONVERGED)


async def power(ctx: Context, attempt: Attempt, *, start: bool) -> LiveDeployment:
    """Send the stop or start, then wait until the deployment reads stopped or running."""
    key = attempt.key
    verb = "start" if start else "stop"
    ctx.emit(attempt, Phase.SUBMITTING, "starting" if start else "stopping")
    send = ctx.api.start_deployment if start else ctx.api.stop_deployment
    await ctx.retried(attempt, lambda: send(key.project_id, key.name))
    await submitted(ctx, attempt, [])
    degraded_since: list[float] = []

    def done(live: LiveDeployment | None) -> bool:
        health = health_of(live)
        if live is None:
            return True
        if not start:
            return health is Health.SUSPENDED
        if health is Health.DEGRADED:
            degraded_since.append(ctx.clock.monotonic())
            attempt.phase = f"Degraded: {degraded_message(live)}"
            return degraded_since[-1] - degraded_since[0] >= ctx.options.degraded_grace
        degraded_since.clear()
        return health is Health.HEALTHY

    ctx.emit(attempt, Phase.DEPLOYING, "waiting until it is running" if start else "stopping")
    live = await ctx.watcher.deployment(key, done, deadline=attempt.deadline)
    if live is None:
        raise ActionFailed(f"the deployment disappeared during the {verb}")
    if health_of(live) is Health.DEGRADED:
        raise ActionFailed(f"Degraded: {degraded_message(live)}")
    return live
