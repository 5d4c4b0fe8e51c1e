"""The watcher follows the server: batched lists on a fixed interval, lone waiters back off,
convergence starts in the round that sees the task end, and only waited-on items are parsed.

All on virtual time: the watcher's clock and the simulator's move together, and a sleep
returns at once after moving both, so twenty simulated seconds take milliseconds.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx

from reconciler.api import ApiClient
from reconciler.clock import Clock
from reconciler.config import ApiSettings, Secret
from reconciler.execute import PollOptions, Watcher
from reconciler.model import DeploymentKey
from reconciler.simulator import Timings, transport

from .conftest import API_KEY, ManualClock, make_simulator, seed_body

TASK_RUN = 20.0
OPTIONS = PollOptions(initial=0.25, cap=5.0, factor=1.5, jitter=0.0, batch_interval=0.25)
SETTINGS = ApiSettings(base_url="http://sim", api_key=Secret(API_KEY))


class VirtualTime:
    """One time for the watcher and the simulator; sleeping moves it."""

    def __init__(self) -> None:
        self.simulated = ManualClock()
        self.now = 0.0

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.simulated.advance(seconds)
        await asyncio.sleep(0)

    @property
    def clock(self) -> Clock:
        return Clock(monotonic=lambda: self.now, sleep=self.sleep, wall=self.simulated)


async def _wait_for_tasks(count: int) -> tuple[float, Watcher]:
    """Create `count` deployments whose tasks run TASK_RUN s; how late their end is seen."""
    time = VirtualTime()
    sim = make_simulator(
        time.simulated, timings=Timings(task_queue=0, task_run=TASK_RUN, rollout=0, delete=0)
    )
    async with ApiClient(SETTINGS, transport=transport(sim)) as api:
        tasks = [
            (await api.create_deployment(1, seed_body(f"svc-{i:02d}")))[0] for i in range(count)
        ]
        async with Watcher(api, asyncio.Semaphore(4), OPTIONS, clock=time.clock) as watcher:
            finished = await asyncio.gather(*(watcher.task(1, t) for t in tasks))
            assert all(t.state == "FINISHED" for t in finished)
            return time.now - TASK_RUN, watcher


async def test_a_batched_list_is_polled_on_a_fixed_interval() -> None:
    late, watcher = await _wait_for_tasks(5)
    assert late <= OPTIONS.batch_interval + 1e-9
    assert watcher.polls["task list"] >= TASK_RUN / OPTIONS.batch_interval - 1
    assert watcher.polls["task get"] == 0


async def test_a_lone_waiter_backs_off() -> None:
    late, watcher = await _wait_for_tasks(1)
    assert watcher.polls["task get"] < TASK_RUN / OPTIONS.batch_interval / 4
    assert late > OPTIONS.batch_interval  # the price of backing off: seen later


async def test_convergence_starts_in_the_round_after_the_task_ends() -> None:
    time = VirtualTime()
    sim = make_simulator(time.simulated, timings=Timings(task_queue=0, task_run=1, rollout=0))
    async with ApiClient(SETTINGS, transport=transport(sim)) as api:
        names = [f"svc-{i:02d}" for i in range(4)]
        tasks = [(await api.create_deployment(1, seed_body(n)))[0] for n in names]
        async with Watcher(api, asyncio.Semaphore(4), OPTIONS, clock=time.clock) as watcher:

            async def one(name: str, task: str) -> float:
                await watcher.task(1, task)
                seen = time.now
                live = await watcher.deployment(
                    DeploymentKey(1, name), lambda d: d is not None and d.status == "ACTIVE"
                )
                assert live is not None
                return time.now - seen

            waits = await asyncio.gather(*(one(n, t) for n, t in zip(names, tasks, strict=True)))
    assert max(waits) == 0.0  # already ACTIVE: no interval spent before looking
    assert watcher.polls["deployment list"] == 1


async def test_an_odd_item_nobody_waits_on_does_not_fail_the_list() -> None:
    sim = make_simulator(ManualClock(), timings=Timings(task_queue=0, task_run=0, rollout=0))
    names = [f"svc-{i:02d}" for i in range(3)]
    async with ApiClient(SETTINGS, transport=transport(sim)) as api:
        for name in names:
            await api.create_deployment(1, seed_body(name))
        answers, _ = await api.answers(api.deployments_path(1))
    odd = {"name": "odd-one", "containers": "not a list", "status": 7}

    def handler(request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = {"count": 4, "results": [*answers, odd]}
        return httpx.Response(200, json=body)

    mock = httpx.MockTransport(handler)
    async with (
        ApiClient(SETTINGS, transport=mock) as api,
        Watcher(api, asyncio.Semaphore(4), OPTIONS) as watcher,
    ):
        waits = [watcher.deployment(DeploymentKey(1, n), lambda d: d is not None) for n in names]
        found = await asyncio.wait_for(asyncio.gather(*waits), timeout=10)
    assert [d.key.name for d in found if d is not None] == names


async def test_a_long_list_is_polled_as_often_as_its_items_allow() -> None:
    """Reading a listed item costs the client whether anyone waits on it: 40 tasks listed at
    0.05 s an item stretch the list's interval to 2 s; a short list keeps `batch_interval`."""
    options = replace(OPTIONS, item_interval=0.05)
    time = VirtualTime()
    sim = make_simulator(
        time.simulated, timings=Timings(task_queue=0, task_run=TASK_RUN, rollout=0, delete=0)
    )
    async with ApiClient(SETTINGS, transport=transport(sim)) as api:
        tasks = [(await api.create_deployment(1, seed_body(f"svc-{i:02d}")))[0] for i in range(40)]
        async with Watcher(api, asyncio.Semaphore(4), options, clock=time.clock) as watcher:
            await asyncio.gather(*(watcher.task(1, t) for t in tasks))
    assert TASK_RUN / 2.0 - 1 <= watcher.polls["task list"] <= TASK_RUN / 2.0 + 2
    _, short = await _wait_for_tasks(5)  # 5 items at the default 0.00015 s: not stretched
    assert short.polls["task list"] >= TASK_RUN / OPTIONS.batch_interval - 1
