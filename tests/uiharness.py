"""The service tests' shared harness, against the simulator over real HTTP on loopback.

`serving()` runs the service with its web page on a loopback port; `Starter` (the `start`
fixture in conftest.py) runs services without a page and stops them after the test. The `sim`
and `folder` fixtures are in conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from reconciler.cli.common import listening_socket
from reconciler.config import ApiSettings, Secret
from reconciler.engine import Target
from reconciler.execute import ApplyOptions, PollOptions
from reconciler.replicas import ProjectLeases
from reconciler.service import ServeOptions, Service
from reconciler.simulator import BackgroundServer, Faults, Simulator, SimulatorConfig, Timings
from reconciler.sources import DirectorySource, Source
from reconciler.ui import UiOptions
from reconciler.web import _Server, build_app

from .conftest import API_KEY, eventually

FAST = Timings(task_queue=0.02, task_run=0.1, rollout=0.1, delete=0.05)
APPLY = ApplyOptions(timeout=5, poll=PollOptions(initial=0.03, cap=0.1))
TOKEN = "ui-token-abcdef0123456789"
SECRET = "webhook-secret"


def sim_server(**faults: Any) -> BackgroundServer:
    sim = Simulator(SimulatorConfig(api_key=API_KEY, timings=FAST, faults=Faults(**faults)))
    return BackgroundServer(sim)


class Running:
    """A service started by `Starter`, and what the simulator holds live."""

    def __init__(self, service: Service, server: BackgroundServer) -> None:
        self.service = service
        self.cloud = server.simulator.cloud

    def live(self, name: str) -> dict[str, Any] | None:
        dep = self.cloud.deployments.get((1, name))
        return self.cloud.view(dep) if dep else None

    def status_is(self, name: str, status: str) -> Callable[[], bool]:
        return lambda: (self.live(name) or {}).get("status") == status


class Starter:
    """Starts services (no web page; `apply` times out after 10 s, backoff from 0.2 s) with
    their state under `tmp_path`; `stop()` stops them all and waits for them."""

    APPLY = ApplyOptions(timeout=10, poll=PollOptions(initial=0.03, cap=0.1))

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.stops: list[asyncio.Event] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def __call__(self, source: Source, server: BackgroundServer, **options: Any) -> Running:
        settings = ApiSettings(base_url=server.url, api_key=Secret(API_KEY))
        target = Target(settings, self.tmp_path / "state" / "state.db")
        options.setdefault("interval", 3600)
        options.setdefault("debounce", 0.1)
        options.setdefault("backoff_initial", 0.2)
        service = Service(
            source, target, ServeOptions(apply=self.APPLY, **options), webhook_secret=SECRET
        )
        stop = asyncio.Event()
        self.stops.append(stop)
        self.tasks.append(asyncio.create_task(service.run(stop)))
        await eventually(lambda: service.runs >= 1 and service.running_since is None)
        return Running(service, server)

    async def stop(self) -> None:
        for stop in self.stops:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 15)


@dataclass
class Served:
    service: Service
    url: str
    sim: BackgroundServer

    def live(self, name: str) -> dict[str, Any] | None:
        cloud = self.sim.simulator.cloud
        dep = cloud.deployments.get((1, name))
        return cloud.view(dep) if dep else None

    async def settled(self, runs: int = 1) -> None:
        """Wait until at least `runs` reconciles have finished and none is running."""
        await eventually(
            lambda: self.service.runs >= runs and self.service.running_since is None, 20
        )


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path,
    folder: Path,
    sim: BackgroundServer,
    ui: UiOptions | None = None,
    listeners: Sequence[Callable[[Service], None]] = (),
    state_url: str | None = None,
    **options: Any,
) -> AsyncIterator[Served]:
    """`state_url` (a PostgreSQL inventory) makes the service a replica, as `serve` does."""
    settings = ApiSettings(base_url=sim.url, api_key=Secret(API_KEY))
    target = Target(settings, tmp_path / "state" / "state.db", state_url=state_url)
    leases = ProjectLeases(state_url) if state_url is not None else None
    options.setdefault("interval", 3600)
    options.setdefault("debounce", 0.1)
    options.setdefault("backoff_initial", 30)
    options.setdefault("apply", APPLY)
    service = Service(DirectorySource(folder), target, ServeOptions(**options), leases=leases)
    service.listeners.extend(listeners)
    app = build_app(service, ui or UiOptions(refresh=0.3, snapshot_ttl=0.2))
    sock = listening_socket("127.0.0.1", 0)  # as serve makes it
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    http = asyncio.create_task(server.serve(sockets=[sock]))
    stop = asyncio.Event()
    loop = asyncio.create_task(service.run(stop))
    served = Served(service, f"http://127.0.0.1:{port}", sim)
    try:
        await eventually(lambda: server.started, 10)
        await served.settled()
        yield served
    finally:
        stop.set()
        server.should_exit = True
        await asyncio.wait_for(asyncio.gather(loop, http), 15)
        sock.close()
        if leases is not None:
            leases.close()
