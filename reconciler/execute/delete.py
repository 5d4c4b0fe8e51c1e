"""Delete: DELETE the deployment, then wait until it is gone and forget its record.

Nothing is sent for a deployment that is gone or already DELETING; after a lost answer the
deployment is read again the same way before anything is resent.
"""

from __future__ import annotations

from ..errors import ApiError, NotFoundError
from ..model import DeploymentStatus
from .context import Attempt, Context
from .finish import finish
from .outcomes import Phase
from .send import NOT_APPLIED, _NotApplied, send_checked


async def delete(ctx: Context, attempt: Attempt) -> None:
    key = attempt.key

    async def gone_or_going() -> bool:
        live = await ctx.find(attempt)
        return live is None or live.status == DeploymentStatus.DELETING

    async def check(error: ApiError) -> list[str] | _NotApplied:
        return [] if await gone_or_going() else NOT_APPLIED

    tasks: list[str] = []
    if not await gone_or_going():
        ctx.emit(attempt, Phase.SUBMITTING, "deleting")
        try:
            tasks = await send_checked(
                ctx,
                attempt,
                "delete",
                lambda: ctx.api.delete_deployment(key.project_id, key.name),
                check,
            )
        except NotFoundError:
            tasks = []
    await finish(ctx, attempt, tasks)
