"""The watcher: adaptive intervals, and one list call for many waiters of one project."""

from __future__ import annotations

import asyncio
import random

import pytest

from reconciler.api import ApiClient, Task
from reconciler.config import ApiSettings, Secret
from reconciler.errors import PermissionDeniedError, RateLimitedError, ServerError
from reconciler.execute import PollOptions, Watcher
from reconciler.model import DeploymentKey
from reconciler.simulator import Timings, transport

from .conftest import API_KEY, ManualClock, eventually, make_simulator, seed_body
from .fakes import FakeApi, FakeTime, lost, server_error

FAST = Timings(task_queue=0.02, task_run=0.1, rollout=0.1, delete=0.05)
POLL = PollOptions(initial=0.02, cap=0.05)


def rate_limited() -> RateLimitedError:
    return RateLimitedError(method="GET", path="/t", status_code=429, retry_after=1.0)


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


# -- on fake time, against the in-process fake API ----------------------------------------------


async def test_a_failing_poll_is_retried_then_gives_up_after_max_errors() -> None:
    api, time = FakeApi(), FakeTime()
    api.task_state = "RUNNING"
    [task] = await api.create_deployment(1, {"name": "alpha-svc"})
    api.fail["get_task"] += [server_error("GET")] * 2 + [lambda: api.finish_tasks()]  # type: ignore[list-item, func-returns-value]
    options = PollOptions(max_errors=3)
    async with Watcher(api, asyncio.Semaphore(2), options, clock=time.clock) as watcher:  # type: ignore[arg-type]
        finished = await watcher.task(1, task)
        assert finished.state == "FINISHED"  # two failures, then an answer: reset, no harm
        api.fail["get_task"] += [server_error("GET")] * 3
        api.task_state = "RUNNING"
        [other] = await api.create_deployment(1, {"name": "beta-svc"})
        with pytest.raises(ServerError):
            await watcher.task(1, other)
    assert watcher.polls["task get"] == 6


async def test_a_wait_past_its_deadline_raises_timeout() -> None:
    api, time = FakeApi(), FakeTime()
    api.task_state = "RUNNING"
    [task] = await api.create_deployment(1, {"name": "alpha-svc"})
    async with Watcher(api, asyncio.Semaphore(2), clock=time.clock) as watcher:  # type: ignore[arg-type]
        with pytest.raises(TimeoutError):
            await watcher.task(1, task, deadline=30.0)
    assert 30.0 <= time.now < 31.0


async def test_a_predicate_that_raises_fails_only_its_waiter() -> None:
    api, time = FakeApi(), FakeTime()
    api.seed(1, "alpha-svc")

    def broken(live: object) -> bool:
        raise ValueError("bad predicate")

    async with Watcher(api, asyncio.Semaphore(2), clock=time.clock) as watcher:  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="bad predicate"):
            await watcher.deployment(DeploymentKey(1, "alpha-svc"), broken)
        found = await watcher.deployment(DeploymentKey(1, "alpha-svc"), lambda d: d is not None)
        assert found is not None and found.status == "ACTIVE"


async def test_batches_fall_back_to_a_get_for_tasks_the_list_missed() -> None:
    api, time = FakeApi(), FakeTime()
    api.task_state = "RUNNING"
    tasks = [(await api.create_deployment(1, {"name": f"svc-{i}"}))[0] for i in range(3)]
    missed = tasks[0]
    original = api.list_tasks

    async def list_without_the_first(**filters: object) -> list[Task]:
        api.finish_tasks()
        return [t for t in await original(**filters) if t.id != missed]

    api.list_tasks = list_without_the_first  # type: ignore[method-assign]
    async with Watcher(api, asyncio.Semaphore(2), clock=time.clock) as watcher:  # type: ignore[arg-type]
        done = await asyncio.gather(*(watcher.task(1, t) for t in tasks))
    assert [t.state for t in done] == ["FINISHED"] * 3
    assert watcher.polls["task list"] == 1 and watcher.polls["task get"] == 1


async def test_a_failed_batch_poll_counts_against_every_waiter() -> None:
    api, time = FakeApi(), FakeTime()
    for name in ("a-svc", "b-svc", "c-svc"):
        api.seed(1, name, status="DEPLOYING")
    api.fail["list_deployments"] += [server_error("GET"), lambda: api.deployments.clear()]  # type: ignore[list-item, func-returns-value]
    async with Watcher(api, asyncio.Semaphore(2), clock=time.clock) as watcher:  # type: ignore[arg-type]
        gone = await asyncio.gather(
            *(watcher.deployment(DeploymentKey(1, f"{n}-svc"), lambda d: d is None) for n in "abc")
        )
    assert gone == [None, None, None]
    assert watcher.polls["deployment list"] == 2


async def test_transient_poll_failures_never_end_a_wait_that_has_time_left() -> None:
    api, time = FakeApi(), FakeTime()
    api.task_state = "RUNNING"
    [task] = await api.create_deployment(1, {"name": "alpha-svc"})
    options = PollOptions(max_errors=3)
    api.fail["get_task"] += [server_error("GET"), lost("GET"), rate_limited()] * 3
    api.fail["get_task"].append(lambda: api.finish_tasks())  # type: ignore[arg-type, func-returns-value]
    async with Watcher(api, asyncio.Semaphore(2), options, clock=time.clock) as watcher:  # type: ignore[arg-type]
        finished = await watcher.task(1, task, deadline=600.0)
    assert finished.state == "FINISHED"  # nine transient failures in a row, then an answer
    assert watcher.polls["task get"] == 10


async def test_transient_batch_failures_never_end_waits_that_have_time_left() -> None:
    api, time = FakeApi(), FakeTime()
    api.task_state = "RUNNING"
    tasks = [(await api.create_deployment(1, {"name": f"svc-{i}"}))[0] for i in range(3)]
    options = PollOptions(max_errors=2)
    api.fail["list_tasks"] += [server_error("GET")] * 4 + [lambda: api.finish_tasks()]  # type: ignore[list-item, func-returns-value]
    async with Watcher(api, asyncio.Semaphore(2), options, clock=time.clock) as watcher:  # type: ignore[arg-type]
        done = await asyncio.gather(*(watcher.task(1, t, deadline=600.0) for t in tasks))
    assert [t.state for t in done] == ["FINISHED"] * 3
    assert watcher.polls["task list"] == 5 and watcher.polls["task get"] == 0


async def test_transient_poll_failures_end_at_the_deadline_as_a_timeout() -> None:
    api, time = FakeApi(), FakeTime()
    api.task_state = "RUNNING"
    [task] = await api.create_deployment(1, {"name": "alpha-svc"})
    api.fail["get_task"] += [server_error("GET")] * 1000
    async with Watcher(api, asyncio.Semaphore(2), clock=time.clock) as watcher:  # type: ignore[arg-type]
        with pytest.raises(TimeoutError):
            await watcher.task(1, task, deadline=30.0)
    assert 30.0 <= time.now < 31.0


async def test_permanent_poll_failures_still_end_a_wait_after_max_errors() -> None:
    api, time = FakeApi(), FakeTime()
    api.task_state = "RUNNING"
    [task] = await api.create_deployment(1, {"name": "alpha-svc"})
    denied = PermissionDeniedError(method="GET", path="/t", status_code=403, detail="no rights")
    api.fail["get_task"] += [server_error("GET")] * 4 + [denied] * 3
    options = PollOptions(max_errors=3)
    async with Watcher(api, asyncio.Semaphore(2), options, clock=time.clock) as watcher:  # type: ignore[arg-type]
        with pytest.raises(PermissionDeniedError):
            await watcher.task(1, task, deadline=600.0)
    assert watcher.polls["task get"] == 7
    assert time.now < 60.0  # long before the deadline
