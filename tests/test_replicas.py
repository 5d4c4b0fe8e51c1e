"""Replicas sharing projects on a real PostgreSQL: exactly one holder per project, a fair cap,
takeover at the next rebalance after a replica dies (kill -9 included), due marks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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
def test_replicas_of_another_database_on_the_server_are_not_counted(
    pg_server: str, leases: list[ProjectLeases]
) -> None:
    """Two inventories on one server (staging and production, say) number their replicas alike:
    a replica of one must neither keep a dead replica of the other alive nor count as its
    holder, or the survivors stay under a fair share and leave the dead one's projects free."""
    from tests.pgserver import create_database

    here, there = create_database(pg_server), create_database(pg_server)
    leases.extend([ProjectLeases(here), ProjectLeases(here)])  # numbers 1 and 2 here
    leases.extend([ProjectLeases(there), ProjectLeases(there)])  # and 1 and 2 there
    leases[3].rebalance(PROJECTS)  # replica 2 there holds every project of its inventory
    _settle(leases[:2], PROJECTS)
    gone = leases.pop(1)  # replica 2 here leaves
    [(backend,)] = gone._rows("SELECT pg_backend_pid()")
    gone.close()
    _until_released(leases[0], backend)
    assert [r.number for r in leases[0].heartbeat()] == [1]  # alone in its inventory
    assert leases[0].rebalance(PROJECTS) == set(PROJECTS)  # so it takes everything
    assert set(leases[0].holders().values()) == {leases[0]._conn.info.backend_pid}


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


OBJECT_MANIFESTS = """\
apiVersion: reconciler/v1
kind: InferenceApiKey
metadata: {{name: team-{p}-key, project_id: {p}}}
spec: {{description: clients of project {p}}}
---
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {{name: svc-{p}, project_id: {p}}}
spec:
  image: nginx:latest
  flavor_name: {flavor}
  listening_port: 80
  api_keys: [team-{p}-key]
  containers: [{{region_id: 1, scale: {{min: 1, max: 1}}}}]
"""


@pytest.mark.slow
async def test_a_replica_with_prune_leaves_the_objects_of_projects_it_does_not_hold(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A replica plans only its own projects' deployments; their credentials, secrets and API
    keys too: another project's recorded objects are not orphans of its manifest share."""
    from tests.conftest import FLAVOR
    from tests.uiharness import serving, sim_server

    folder = tmp_path / "manifests"
    folder.mkdir()
    for p in (1, 2):
        (folder / f"p{p}.yaml").write_text(OBJECT_MANIFESTS.format(p=p, flavor=FLAVOR))
    other: ProjectLeases | None = None
    with sim_server() as sim:
        async with serving(tmp_path, folder, sim, state_url=pg_dsn, prune=True) as served:
            objects = sim.simulator.cloud.objects
            assert served.service.projects == {1, 2}  # alone: it holds both, applies both
            assert all(objects.exists("api_keys", p, f"team-{p}-key") for p in (1, 2))
            other = ProjectLeases(pg_dsn)  # a second replica joins
            for _ in range(2):  # this one gives up a project, the other takes it
                runs = served.service.runs
                served.service.trigger("test")
                await served.settled(runs + 1)
                other.rebalance([1, 2])
            assert len(served.service.projects or ()) == 1 and len(other.held) == 1
            runs = served.service.runs
            served.service.trigger("test")  # a reconcile of its share alone, with --prune
            await served.settled(runs + 1)
            assert served.service.last is not None
            assert served.service.last.result == "ok", served.service.last.errors
            [gone] = other.held
            assert objects.exists("api_keys", gone, f"team-{gone}-key")
            assert (gone, f"svc-{gone}") in sim.simulator.cloud.deployments
    if other is not None:
        other.close()


@pytest.mark.slow
async def test_a_project_left_with_only_recorded_objects_still_gets_its_prune(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The projects replicas share include those of recorded credentials, secrets and API keys:
    a project whose last manifest (an API key) was removed still has a holder to prune it."""
    from tests.conftest import FLAVOR
    from tests.uiharness import serving, sim_server

    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "p1.yaml").write_text(OBJECT_MANIFESTS.format(p=1, flavor=FLAVOR))
    (folder / "p3.yaml").write_text(OBJECT_MANIFESTS.split("---")[0].format(p=3))
    with sim_server() as sim:
        async with serving(tmp_path, folder, sim, state_url=pg_dsn, prune=True) as served:
            objects = sim.simulator.cloud.objects
            assert served.service.projects == {1, 3}
            assert objects.exists("api_keys", 3, "team-3-key")
            (folder / "p3.yaml").unlink()
            runs = served.service.runs
            served.service.trigger("test")
            await served.settled(runs + 1)
            assert served.service.last is not None
            assert served.service.last.result == "ok", served.service.last.errors
            assert not objects.exists("api_keys", 3, "team-3-key")
            assert objects.exists("api_keys", 1, "team-1-key")


@pytest.mark.slow
async def test_replicas_apply_their_projects_side_by_side(tmp_path: Path, pg_dsn: str) -> None:
    """While one replica waits on a long rollout in its project, another applies a change in
    its own at once: replicas share the apply lock; only a whole-inventory apply excludes."""
    from dataclasses import replace

    from tests.conftest import FLAVOR, eventually
    from tests.uiharness import APPLY, serving, sim_server

    folder = tmp_path / "manifests"
    folder.mkdir()

    def write(p: int, image: str = "nginx:latest") -> None:
        text = OBJECT_MANIFESTS.split("---")[1].format(p=p, flavor=FLAVOR)
        text = text.replace(f"  api_keys: [team-{p}-key]\n", "")
        (folder / f"p{p}.yaml").write_text(text.replace("nginx:latest", image))

    write(1)
    write(2)
    slow = replace(APPLY, timeout=60)  # a stuck rollout is waited for a long time
    quick = {"apply": slow, "lock_timeout": 1.0, "shutdown_grace": 0.2}
    with sim_server(stuck_image="^stuck/") as sim:
        async with (
            serving(tmp_path / "a", folder, sim, state_url=pg_dsn, **quick) as a,
            serving(tmp_path / "b", folder, sim, state_url=pg_dsn, **quick) as b,
        ):
            for _ in range(3):  # each reconcile rebalances: until each holds one project
                if len(a.service.projects or ()) == len(b.service.projects or ()) == 1:
                    break
                for served in (a, b):
                    runs = served.service.runs
                    served.service.trigger("test")
                    await served.settled(runs + 1)
            [mine] = a.service.projects or ()
            [theirs] = b.service.projects or ()
            cloud = sim.simulator.cloud

            write(mine, "stuck/model:1")  # replica a's rollout will not finish
            a.service.trigger("test")

            def image(p: int) -> str:
                return str(cloud.view(cloud.deployments[(p, f"svc-{p}")])["image"])

            await eventually(lambda: image(mine) == "stuck/model:1", 20)
            write(theirs, "nginx:1.27")
            runs = b.service.runs
            b.service.trigger("test")
            await b.settled(runs + 1)
            assert b.service.last is not None
            assert b.service.last.result == "ok", b.service.last.errors
            assert image(theirs) == "nginx:1.27"
            assert a.service.running_since is not None  # a still waits on its rollout
