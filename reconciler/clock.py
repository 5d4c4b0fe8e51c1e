"""Time as a value: everything that waits takes a `Clock`, so tests run it on fake time.

`monotonic` measures intervals and deadlines, `wall` stamps records and journal entries, and
`sleep` is the only way waiting code lets time pass. `REAL` is the one used outside tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["REAL", "Clock"]


@dataclass(frozen=True)
class Clock:
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    wall: Callable[[], float] = time.time


REAL = Clock()
