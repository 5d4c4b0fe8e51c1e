"""Replicas sharing projects on a real PostgreSQL: exactly one holder per project, a fair cap,
takeover at the next rebalance after a replica dies (kill -9 included), due marks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from reconciler.replicas import ProjectLeases, cap, project_object

PROJECTS = [11, 12, 13, 14, 15, 16]


def test_the_cap_leaves_room_for_every_project() -> None:
    assert cap(6, 1) == 6
    assert cap(6, 2) == 4 and cap(6, 3) == 3 and cap(7, 3) == 4 and cap(0, 3) == 1
    for projects in range(0, 40):
        for live in range(1, 8):
            assert cap(projects, live) * live >= projects


def test_project_objects_fit_an_int4_lock_key() -> None:
    assert project_object(7) == 7
    big = project_object(2**40 + 3)
    assert 0 <= big < 2**31 and big == project_object(2**40 + 3)


@pytest.fixture
def leases(pg_dsn: str) -> Iterator[list[ProjectLeases]]:
    opened: list[ProjectLeases] = []
    yield opened
    for one in opened:
        one.close()


def _settle(replicas: list[ProjectLeases], projects: list[int], rounds: int = 3) -> None:
    for _ in range(rounds):
        for replica in replicas:
            replica.rebalance(projects)


def _until_released(observer: ProjectLeases, backend: int, timeout: float = 10.0) -> None:
    """The server ends a closed session a moment after the client leaves: wait for that."""
    deadline = time.monotonic() + timeout
    while backend in observer.holders().values():
        assert time.monotonic() < deadline, "the server kept a closed session's locks"
        time.sleep(0.01)


def _assert_each_project_held_once(replicas: list[ProjectLeases], projects: list[int]) -> None:
    held = [p for r in replicas for p in r.held]
    assert sorted(held) == sorted(projects), [sorted(r.held) for r in replicas]
    server_view = replicas[0].holders()
    assert set(server_view) == {project_object(p) for p in projects}


@pytest.mark.slow
def test_three_replicas_share_six_projects_one_holder_each(
    pg_dsn: str, leases: list[ProjectLeases]
) -> None:
    leases.extend(ProjectLeases(pg_dsn) for _ in range(3))
    _settle(leases, PROJECTS)
    _assert_each_project_held_once(leases, PROJECTS)
    assert all(len(r.held) <= cap(6, 3) for r in leases)
    assert len(leases[0].heartbeat()) == 3


@pytest.mark.slow
def test_a_first_replica_takes_all_then_shares_when_others_join(
    pg_dsn: str, leases: list[ProjectLeases]
) -> None:
    leases.append(ProjectLeases(pg_dsn))
    assert leases[0].rebalance(PROJECTS) == set(PROJECTS)  # alone: everything
    leases.append(ProjectLeases(pg_dsn))
    _settle(leases, PROJECTS)
    _assert_each_project_held_once(leases, PROJECTS)
    assert all(1 <= len(r.held) <= cap(6, 2) for r in leases)


@pytest.mark.slow
def test_a_closed_replicas_projects_are_taken_at_the_next_rebalance(
    pg_dsn: str, leases: list[ProjectLeases]
) -> None:
    leases.extend(ProjectLeases(pg_dsn) for _ in range(3))
    _settle(leases, PROJECTS)
    gone = leases.pop(1)
    [(backend,)] = gone._rows("SELECT pg_backend_pid()")
    gone.close()
    _until_released(leases[0], backend)
    for replica in leases:  # one round: one --interval
        replica.rebalance(PROJECTS)
    _assert_each_project_held_once(leases, PROJECTS)
    assert len(leases[0].heartbeat()) == 2


@pytest.mark.slow
def test_a_killed_replicas_projects_are_freed_by_the_server(
    pg_dsn: str, leases: list[ProjectLeases]
) -> None:
    code = (
        "import os, signal, sys\n"
        "from reconciler.replicas import ProjectLeases\n"
        "r = ProjectLeases(sys.argv[1])\n"
        "print(sorted(r.rebalance([11, 12, 13, 14, 15, 16])), flush=True)\n"
        "sys.stdin.readline()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    victim = subprocess.Popen(
        [sys.executable, "-c", code, pg_dsn],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert victim.stdout is not None and victim.stdin is not None
    assert victim.stdout.readline().strip() == str(PROJECTS)  # alone, it took all six
    leases.extend(ProjectLeases(pg_dsn) for _ in range(2))
    for replica in leases:
        assert replica.rebalance(PROJECTS) == set()  # all held by the victim
    victim.stdin.write("go\n")
    victim.stdin.flush()
    assert victim.wait(30) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while leases[0].holders():  # the server ends the dead session a moment after the kill
        assert time.monotonic() < deadline, "the server kept a killed session's locks"
        time.sleep(0.01)
    _settle(leases, PROJECTS, rounds=1)
    _assert_each_project_held_once(leases, PROJECTS)
    assert {r.pid for r in leases[0].heartbeat()} == {os.getpid()}


@pytest.mark.slow
def test_a_due_mark_reaches_the_holder_only(pg_dsn: str, leases: list[ProjectLeases]) -> None:
    leases.extend(ProjectLeases(pg_dsn) for _ in range(2))
    _settle(leases, PROJECTS)
    holder = next(r for r in leases if 13 in r.held)
    other = next(r for r in leases if r is not holder)
    other.mark_due([13])  # a webhook reached the replica that does not hold project 13
    assert other.take_due() == set()
    assert holder.take_due() == {13}
    assert holder.take_due() == set()  # consumed once
