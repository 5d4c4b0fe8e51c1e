"""Update: PATCH only the changed top-level fields (a removed field is reset to its default).

After a lost answer the deployment is read: if it already matches the manifest, the update took
effect and its task ID went with the answer; if it is gone, the update fails; otherwise it is
sent again.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..diff import RESET_VALUES, diff
from ..errors import ApiError
from .context import Attempt, Context
from .finish import finish
from .outcomes import ActionFailed, Phase
from .send import NOT_APPLIED, _NotApplied, send_checked


async def update(ctx: Context, attempt: Attempt) -> None:
    fields = attempt.change.fields
    tasks: list[str] = []
    if fields:
        ctx.emit(attempt, Phase.SUBMITTING, f"updating {', '.join(fields)}")
        tasks = await patch(ctx, attempt, fields)
    await finish(ctx, attempt, tasks)


async def patch(ctx: Context, attempt: Attempt, fields: Sequence[str]) -> list[str]:
    desired = attempt.wanted()
    body = desired.spec.body()
    changes = {f: body[f] if f in body else RESET_VALUES.get(f) for f in fields}
    key = attempt.key

    async def check(error: ApiError) -> list[str] | _NotApplied:
        live = await ctx.find(key)
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
