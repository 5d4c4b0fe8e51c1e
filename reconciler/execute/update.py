"""Update: PATCH only the changed top-level fields (a removed field is reset to its default).

The plan's `steps` say which fields go in which PATCH, in order (`reconciler.patch`: never both
auth fields in one body; keys to `auth_enabled: true` is `api_keys: []`, then the flag); each
PATCH after the first is sent once the tasks of the one before have finished. Bodies come from
`patch.body`: nested objects explicit, so they are right whether the server merges or replaces.

After a lost answer the deployment is read: if it already matches the manifest, the update took
effect and its task ID went with the answer; if it is gone, the update fails; otherwise it is
sent again.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import patch as patches
from ..diff import diff
from ..errors import ApiError
from .context import Attempt, Context
from .finish import finish, wait_tasks
from .outcomes import ActionFailed, Phase
from .send import NOT_APPLIED, _NotApplied, send_checked


async def update(ctx: Context, attempt: Attempt) -> None:
    change = attempt.change
    tasks = await send_steps(ctx, attempt, change.steps or (change.fields,))
    await finish(ctx, attempt, tasks)


async def send_steps(ctx: Context, attempt: Attempt, steps: patches.Steps) -> list[str]:
    """Send each PATCH in order; return the last one's tasks (the earlier ones have finished)."""
    tasks: list[str] = []
    for number, fields in enumerate(s for s in steps if s):
        if number:
            await wait_tasks(ctx, attempt, tasks)
        ctx.emit(attempt, Phase.SUBMITTING, f"updating {', '.join(fields)}")
        tasks = await patch(ctx, attempt, fields)
    return tasks


async def patch(ctx: Context, attempt: Attempt, fields: Sequence[str]) -> list[str]:
    desired = attempt.wanted()
    body = desired.body()
    changes = patches.body(body, fields)
    key = attempt.key

    async def check(error: ApiError) -> list[str] | _NotApplied:
        live = await ctx.find(attempt)
        if live is None:
            raise ActionFailed(f"the deployment disappeared during the update ({error})")
        if not diff(body, live.spec_view, sensitive=desired.sensitive_paths):
            return []  # it took effect; its task ID was lost with the answer
        return NOT_APPLIED

    return await send_checked(
        ctx,
        attempt,
        "update",
        lambda: ctx.api.update_deployment(key.project_id, key.name, changes),
        check,
    )
