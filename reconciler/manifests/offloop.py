"""Loading manifests from async code: in a worker thread, within a time bound.

The event loop keeps answering (health checks, SIGTERM) while files are read; a load that
takes longer than `LOAD_TIMEOUT` (a stalled network file system) fails the reconcile with one
line instead of freezing the service.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from ..errors import ReconcilerError
from ..model import DesiredState
from . import ManifestError, load_manifests

LOAD_TIMEOUT = 60.0


async def load_off_loop(
    paths: Sequence[str | os.PathLike[str]],
    default_project_id: int | None,
    timeout: float = LOAD_TIMEOUT,
    secrets_from: Sequence[str | os.PathLike[str]] = (),
) -> tuple[DesiredState, list[ManifestError]]:
    work = asyncio.to_thread(
        load_manifests, paths, default_project_id=default_project_id, secrets_from=secrets_from
    )
    try:
        return await asyncio.wait_for(work, timeout)
    except TimeoutError:
        raise ReconcilerError(f"loading the manifests took over {timeout:g}s; gave up") from None
