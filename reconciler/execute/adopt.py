"""Adopt: take ownership of a live deployment the manifests describe, then patch it to match.

Two ways in: the plan says adopt (the deployment was there before us), or a create answered 409
(a lost answer, a race). Ownership is recorded before the patch, so a crash cannot lose it.
"""

from __future__ import annotations

from .. import patch
from ..diff import diff, patch_fields
from ..model import LiveDeployment, RecordOutcome
from .context import Attempt, Context
from .finish import finish
from .outcomes import Phase
from .update import send_steps


async def adopt(ctx: Context, attempt: Attempt) -> None:
    """The plan's adopt: the fields to send, and in which PATCHes, were decided by the plan."""
    await ctx.record(attempt, RecordOutcome.ADOPTING)
    change = attempt.change
    tasks = await send_steps(ctx, attempt, change.steps or (change.fields,))
    await finish(ctx, attempt, tasks)


async def adopt_existing(ctx: Context, attempt: Attempt, live: LiveDeployment) -> None:
    """A create answered 409 and the namesake is not going away: verify it, then take it."""
    desired = attempt.wanted()
    ctx.emit(attempt, Phase.ADOPTING, "exists already: adopting")
    changes = diff(desired.body(), live.spec_view, sensitive=desired.sensitive_paths)
    body = desired.body()
    steps = patch.steps(patch_fields(tuple(changes)), body, live.spec_view)
    tasks = await send_steps(ctx, attempt, steps)
    await finish(ctx, attempt, tasks)
