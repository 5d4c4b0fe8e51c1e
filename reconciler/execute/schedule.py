"""When the watcher polls what: the waiting entries and the timing rules (see `tasks.py`).

No requests here: a `Schedule` says when each entry or batched list is next due, from the
options, the clock and a random source for jitter, so the rules can be read (and tested) apart
from the polling.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..clock import Clock

Group = tuple["Kind", int]


@dataclass(frozen=True)
class PollOptions:
    initial: float = 0.25
    cap: float = 5.0
    factor: float = 1.25
    jitter: float = 0.2
    batch_min: int = 3
    max_errors: int = 5
    batch_interval: float = 0.1  # a batched list, polled on a fixed interval
    page_interval: float = 0.05  # at most one list page per this many seconds, all lists together
    item_interval: float = 0.00015  # and one listed item per this many (1,000 items: 0.15 s)

    def next_interval(self, interval: float) -> float:
        return min(interval * self.factor, self.cap)

    def spread(self, interval: float, rng: random.Random) -> float:
        return interval * (1 + self.jitter * (2 * rng.random() - 1))


class Kind(StrEnum):
    TASK = "task"
    DEPLOYMENT = "deployment"


@dataclass(eq=False)
class Entry:
    """One wait: what it waits on, when it is next polled, and its future."""

    kind: Kind
    project_id: int
    ident: str  # task id, or deployment name
    update: Callable[[Any], bool]  # takes the polled object; true when the wait is over
    future: asyncio.Future[Any]
    due: float
    interval: float
    deadline: float | None = None
    since: float = 0.0  # wall time it registered: a task was created before this
    errors: int = 0

    @property
    def group(self) -> Group:
        # tasks batch across projects (matched by ID); deployments are listed per project
        return (self.kind, 0 if self.kind is Kind.TASK else self.project_id)


class Schedule:
    """The due times of lone entries (backed off with jitter) and of batched lists (fixed
    interval, stretched to bound the pages asked for)."""

    def __init__(self, options: PollOptions, clock: Clock, rng: random.Random) -> None:
        self.options = options
        self.clock = clock
        self.rng = rng
        self._next_list: dict[Group, float] = {}  # a batched list's next poll
        self.list_pages: dict[Group, int] = {}  # pages its last poll took
        self.list_items: dict[Group, int] = {}  # items its last poll listed

    def due(self, interval: float, deadline: float | None) -> float:
        due = self.clock.monotonic() + self.options.spread(interval, self.rng)
        return due if deadline is None else min(due, deadline)

    def batched(self, waiting: list[Entry]) -> bool:
        return len(waiting) >= self.options.batch_min

    def list_due(self, group: Group, waiting: list[Entry]) -> float:
        """When a batched list is next polled: on its schedule, or as its first entry is due."""
        scheduled = self._next_list.get(group)
        return min(e.due for e in waiting) if scheduled is None else scheduled

    def next_due(self, groups: dict[Group, list[Entry]], entries: Iterable[Entry]) -> float:
        """The earliest time anything is due: a poll, or an entry's deadline."""
        dues = []
        for group, waiting in groups.items():
            if self.batched(waiting):
                dues.append(self.list_due(group, waiting))
            else:
                dues.extend(e.due for e in waiting)
        deadlines = [e.deadline for e in entries if e.deadline is not None]
        return min(dues + deadlines) if dues or deadlines else self.clock.monotonic()

    def schedule_lists(self, groups: dict[Group, list[Entry]]) -> None:
        """Each batched list's next poll: `batch_interval` on, stretched so that all the lists
        together ask for at most one page per `page_interval` and one item per `item_interval`
        (reading an item costs the client, waited on or not: short lists are polled often,
        long ones as often as their size allows)."""
        now = self.clock.monotonic()
        batched = [g for g, waiting in groups.items() if self.batched(waiting)]
        pages = sum(self.list_pages.get(g, 1) for g in batched)
        items = sum(self.list_items.get(g, 0) for g in batched)
        options = self.options
        interval = max(
            options.batch_interval, pages * options.page_interval, items * options.item_interval
        )
        for group in batched:
            if self._next_list.get(group, now) <= now:
                self._next_list[group] = now + interval
        for group in list(self._next_list):
            if group not in batched:
                del self._next_list[group]  # no longer batched: start afresh if it is again

    def reschedule(self, entry: Entry) -> None:
        """The entry's next poll, its interval grown by `factor` up to `cap`."""
        entry.interval = self.options.next_interval(entry.interval)
        entry.due = self.due(entry.interval, entry.deadline)
