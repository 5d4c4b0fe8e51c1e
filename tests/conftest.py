from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.simulator import BackgroundServer, Cloud, Simulator, SimulatorConfig

# A CLI process a test starts (`python -m reconciler` from a temporary folder) must run this
# checkout's code, not whatever copy of the package is installed.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
)

if TYPE_CHECKING:
    from .uiharness import Starter


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (the default): one worker per core for a run with the slow suites, whose
    processes, browsers and databases want a core each; three per core for the quick suite
    (`-m "not slow"`), whose tests mostly wait on loopback HTTP and each other's turns."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or config.option.markexpr != "not slow":
        return None  # xdist's own count
    return 3 * (len(os.sched_getaffinity(0)) or 1)


API_KEY = "test-key-0123456789"
FLAVOR = "inference-16vcpu-232gib-1xh100-80gb"


class ManualClock:
    """A clock that moves only when told: the simulator's lifecycle under test control."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `check()` holds: for state that other threads and processes change."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def make_simulator(clock: ManualClock | None = None, **config: Any) -> Simulator:
    config.setdefault("api_key", API_KEY)
    # RECONCILER_TEST_SIM_MODES=sparse-answers,patch-merge runs a suite against those modes
    for mode in filter(None, os.environ.get("RECONCILER_TEST_SIM_MODES", "").split(",")):
        config.setdefault(mode.replace("-", "_"), True)
    cfg = SimulatorConfig(**config)
    return Simulator(cfg, Cloud(cfg, clock=clock) if clock else None)


def seed_body(name: str = "my-instance", **overrides: Any) -> dict[str, Any]:
    """The create body of Gcore's API page example."""
    body: dict[str, Any] = {
        "name": name,
        "image": "nginx:latest",
        "listening_port": 80,
        "flavor_name": FLAVOR,
        "containers": [
            {
                "region_id": 1,
                "scale": {
                    "min": 1,
                    "max": 3,
                    "cooldown_period": 60,
                    "triggers": {"cpu": {"threshold": 80}, "memory": {"threshold": 70}},
                },
            }
        ],
        "command": ["nginx", "-g", "daemon off;"],
        "description": "My first instance",
        "envs": {"DEBUG_MODE": "False", "KEY": "12345"},
    }
    body.update(overrides)
    return body


def manifest(
    name: str,
    *,
    image: str = "nginx:latest",
    description: str | None = None,
    min_: int = 1,
    max_: int = 2,
    extra: str = "",
) -> str:
    """A small valid manifest for project 1; `extra` is appended under `spec`."""
    return f"""\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {{name: {name}, project_id: 1}}
spec:
  image: {image}
  flavor_name: {FLAVOR}
  listening_port: 80
  description: {description or name}
  containers: [{{region_id: 1, scale: {{min: {min_}, max: {max_}}}}}]
{extra}"""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def simulator(clock: ManualClock) -> Simulator:
    return make_simulator(clock)


@pytest.fixture
def server(simulator: Simulator) -> Iterator[BackgroundServer]:
    with BackgroundServer(simulator) as srv:
        yield srv


# -- the service against the simulator over HTTP (tests/uiharness.py) -------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty manifests folder."""
    path = tmp_path / "manifests"
    path.mkdir()
    return path


@pytest.fixture
def sim() -> Iterator[BackgroundServer]:
    """The simulator over HTTP on quick timings; `broken/` images fail their task, `stuck/`
    images never become ready."""
    from .uiharness import sim_server

    with sim_server(task_error_image="^broken/", stuck_image="^stuck/") as server:
        yield server


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Starter]:
    """`await start(source, sim, **serve_options)` runs a service until the test ends."""
    from .uiharness import Starter

    starter = Starter(tmp_path)
    yield starter
    await starter.stop()


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The DSN of a real PostgreSQL server's admin database (see tests/pgserver.py)."""
    from tests import pgserver

    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        pgserver.unavailable(f"psycopg is not installed ({exc})")
    given = os.environ.get(pgserver.ENV_DSN)
    if given:
        yield given
        return
    try:
        server = pgserver.throwaway_server()
        dsn = server.__enter__()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pgserver.unavailable(f"{exc} {detail.decode(errors='replace')}".strip())
    try:
        yield dsn
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def pg_dsn(pg_server: str) -> str:
    """A fresh, empty database on the test server."""
    from tests import pgserver

    return pgserver.create_database(pg_server)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def state_location(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Where a state store lives: a SQLite file, or a fresh database on a real PostgreSQL.

    Every test that takes it runs once per backend: the contract both stores keep.
    """
    if request.param == "sqlite":
        return str(tmp_path / "state" / "state.db")
    return str(request.getfixturevalue("pg_dsn"))
