"""The watcher: adaptive intervals, and one list call for many waiters of one project."""

from __future__ import annotations

import asyncio
import random

from reconciler.api import ApiClient
from reconciler.config import ApiSettings, Secret
from reconciler.execute import PollOptions, Watcher
from reconciler.model import DeploymentKey
from reconciler.simulator import Timings, transport

from .conftest import API_KEY, ManualClock, eventually, make_simulator, seed_body

FAST = Timings(task_queue=0.02, task_run=0.1, rollout=0.1, delete=0.05)
POLL = PollOptions(initial=0.02, cap=0.05)


def test_intervals_grow_to_the_cap_with_jitter() -> None:
    options = PollOptions(initial=0.5, cap=5.0, factor=1.5, jitter=0.2)
    intervals = [options.initial]
    for _ in range(8):
        intervals.append(options.next_interval(intervals[-1]))
    assert intervals[:4] == [0.5, 0.75, 1.125, 1.6875]
    assert intervals[-1] == 5.0
    rng = random.Random(3)
    spread = [options.spread(1.0, rng) for _ in range(200)]
    assert 0.8 <= min(spread) < 0.85 and 1.15 < max(spread) <= 1.2


async def _watch(count: int) -> Watcher:
    """Wait on `count` creates while the simulator's clock stands still, then let it run:
    every waiter learns the outcome from the same poll."""
    clock = ManualClock()
    sim = make_simulator(clock, timings=FAST)
    settings = ApiSettings(base_url="http://sim", api_key=Secret(API_KEY))
    async with ApiClient(settings, transport=transport(sim)) as api:
        tasks = [
            (await api.create_deployment(1, seed_body(f"svc-{i:02d}")))[0] for i in range(count)
        ]
        async with Watcher(api, asyncio.Semaphore(4), POLL) as watcher:
            waiting = asyncio.gather(*(watcher.task(1, t) for t in tasks))
            await eventually(lambda: sum(watcher.polls.values()) >= 1)  # being watched
            clock.advance(10)  # every task ends, every deployment comes up
            finished = await waiting
            assert all(t.state == "FINISHED" for t in finished)
            live = await asyncio.gather(
                *(
                    watcher.deployment(
                        DeploymentKey(1, f"svc-{i:02d}"),
                        lambda d: d is not None and d.status == "ACTIVE",
                    )
                    for i in range(count)
                )
            )
            assert all(d is not None and d.status == "ACTIVE" for d in live)
        return watcher


async def test_many_waiters_share_list_calls() -> None:
    watcher = await _watch(10)
    assert watcher.polls["task list"] >= 1 and watcher.polls["task get"] == 0
    assert watcher.polls["deployment list"] == 1 and watcher.polls["deployment get"] == 0


async def test_a_lone_waiter_polls_on_its_own() -> None:
    watcher = await _watch(1)
    assert watcher.polls["task get"] >= 1 and watcher.polls["task list"] == 0
    assert watcher.polls["deployment get"] == 1 and watcher.polls["deployment list"] == 0
