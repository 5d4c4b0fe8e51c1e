"""The resend rule, in one place: a mutating request is sent again only after proving the last
one did nothing.

The client already resends what provably never arrived (a refused connection, a 429). What
reaches here is an error after which the request may have taken effect: a lost answer
(`ApiTransportError.maybe_applied`) or a 5xx. `check` then reads the world and either returns
the request's result (it did happen; the task IDs went with the answer) or `NOT_APPLIED`, and
only then is the request sent again, after a backoff. The check's read is itself retried while
it fails transiently (`Context.retried`): a 503 on the read proves nothing. A transient failure
is never the end: the request is sent again, each time after proving the last did nothing,
until the attempt's deadline (then `TimeoutError`). Any other error is raised at once. The
loop always ends in a value or a raise.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Final, TypeVar

from ..errors import ApiError, ApiTransportError
from .context import Attempt, Context, backoff
from .outcomes import Phase

T = TypeVar("T")


class _NotApplied(Enum):
    NOT_APPLIED = "not applied"


NOT_APPLIED: Final = _NotApplied.NOT_APPLIED


def may_have_applied(error: ApiError) -> bool:
    if isinstance(error, ApiTransportError):
        return error.maybe_applied
    return error.temporary  # a 5xx: the server may have acted before failing


async def send_checked(
    ctx: Context,
    attempt: Attempt,
    what: str,
    send: Callable[[], Awaitable[T]],
    check: Callable[[ApiError], Awaitable[T | _NotApplied]],
) -> T:
    """Send `send()`; on an error after which it may have applied, ask `check` before resending."""
    for number in itertools.count():
        try:
            return await ctx.call(send)
        except ApiError as exc:
            if not exc.temporary:
                raise
            if may_have_applied(exc):
                found = await check(exc)
                if found is not NOT_APPLIED:
                    return found
            left = attempt.deadline - ctx.clock.monotonic()
            if left <= 0:
                raise TimeoutError from exc
            ctx.emit(attempt, Phase.SUBMITTING, f"{what} not applied ({exc}); retrying")
            await ctx.clock.sleep(min(backoff(number), left))
    raise AssertionError("unreachable")
