"""The last log lines of a deployment that failed, for its failure message (and `status`).

When a create, update or start ends in a task ERROR, a lasting Degraded or a deadline, the
pods' own words are usually the quickest explanation: the newest `TAIL` lines (time, pod,
message, control characters escaped) are appended to the message. Reading them is best effort:
if the logs cannot be read, the message stays as it was.
"""

from __future__ import annotations

from ..api.objects import InferenceObjects
from ..errors import ApiError
from ..model import DeploymentKey
from ..textsafe import escape
from .context import Context

TAIL = 20


async def with_logs(ctx: Context, key: DeploymentKey, message: str) -> str:
    try:
        lines = await ctx.call(
            lambda: InferenceObjects(ctx.api).logs(key.project_id, key.name, tail=TAIL)
        )
    except (ApiError, AttributeError, TypeError):  # best effort: a client without logs included
        return message
    if not lines:
        return message
    shown = "\n".join(f"  {escape(f'{x.time} {x.pod} {x.message}')}" for x in lines)
    return f"{message}\nlast {len(lines)} log line(s):\n{shown}"
