"""Create: POST the body; never two creates for one name.

A lost answer is checked by reading the deployment (there: it happened, finish without task
IDs). A 409 means the name is taken: by a namesake being deleted (wait until it is gone, then
create again), by one gone by the time we look (create again), or by a live one (verify and
adopt it, unless `--no-adopt` or another object such as an Application manages it: then this
deployment fails and the namesake is left untouched).
Creating again happens a bounded number of times.
"""

from __future__ import annotations

from ..errors import ApiError, ConflictError
from ..model import DeploymentStatus, LiveDeployment
from .adopt import adopt_existing
from .context import Attempt, Context
from .finish import finish
from .outcomes import ActionFailed, Phase
from .send import NOT_APPLIED, _NotApplied, send_checked

CREATE_ATTEMPTS = 8  # creates of one name, each after a 409 from a namesake that went away


async def create(ctx: Context, attempt: Attempt) -> None:
    key = attempt.key
    body = {"name": key.name, **attempt.wanted().body()}

    async def check(error: ApiError) -> list[str] | _NotApplied:
        return [] if await ctx.find(attempt) is not None else NOT_APPLIED

    for _ in range(CREATE_ATTEMPTS):
        ctx.emit(attempt, Phase.SUBMITTING, "creating")
        try:
            tasks = await send_checked(
                ctx,
                attempt,
                "create",
                lambda: ctx.api.create_deployment(key.project_id, body),
                check,
            )
        except ConflictError:
            live = await ctx.find(attempt)
            if live is None:
                continue  # the namesake went away between the 409 and our look: create again
            if live.status != DeploymentStatus.DELETING:
                if live.managed_by:
                    raise ActionFailed(
                        f"create answered 409 Conflict: {live.managed_by} manages it; it is "
                        "never adopted, updated or deleted here"
                    ) from None
                if not ctx.options.adopt:
                    raise ActionFailed(
                        "create answered 409 Conflict: a deployment of that name exists and is "
                        "not ours; left untouched (--no-adopt)"
                    ) from None
                await adopt_existing(ctx, attempt, live)
                return
            # an old deployment of that name is going away: create once it is gone
            ctx.emit(attempt, Phase.SUBMITTING, "waiting for the old one to be deleted")
            await ctx.watcher.deployment(
                key, lambda found: found is None, deadline=attempt.deadline
            )
            continue
        await finish(ctx, attempt, tasks)
        return
    raise ActionFailed(
        f"create answered 409 Conflict {CREATE_ATTEMPTS} times: a deployment of that name "
        "kept being deleted and recreated meanwhile"
    )


def _gone(live: LiveDeployment | None) -> bool:
    return live is None
