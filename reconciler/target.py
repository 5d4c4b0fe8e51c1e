"""Where a command acts: which API (the real one, or the embedded simulator) and which state.

`Target` names both; `connect` opens the API client for it and `open_state` its state store
(any `StateStore` backend); `read_state` opens it for reading without creating it. The stages
(`engine`) take what these open and never decide where things live.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .api import ApiClient
from .config import ApiSettings, Secret
from .simulator import SimulatorConfig  # a dataclass; the simulator itself loads in `connect`
from .state import DEFAULT_STATE_PATH, StateStore, is_database_url, open_store

SIMULATOR_URL = "http://simulator.invalid"


@dataclass(frozen=True)
class Target:
    """Which API to talk to and where the state lives.

    The state is a file (`state_path`) or a PostgreSQL database (`state_url`); with a database,
    `state_path` still names the local working folder (`.reconciler/`: git checkouts, the
    embedded simulator's cloud) through its parent.
    """

    settings: ApiSettings
    state_path: Path
    simulate: bool = False
    state_url: str | None = None

    @classmethod
    def from_env(
        cls, *, state: str | None, simulate: bool, env: Mapping[str, str] | None = None
    ) -> Target:
        env = os.environ if env is None else env
        settings = ApiSettings.from_env(env)
        location = state or env.get("RECONCILER_STATE") or DEFAULT_STATE_PATH
        if not simulate:
            settings.require_key()
        if is_database_url(location):
            return cls(settings, Path(DEFAULT_STATE_PATH), simulate, state_url=location)
        return cls(settings, Path(location), simulate)

    @property
    def state_location(self) -> str:
        """What `open_store` takes: the database URL, else the file's path."""
        return self.state_url or str(self.state_path)

    @property
    def state_shown(self) -> str:
        """The state's location for messages: a database URL without its password."""
        if self.state_url is None:
            return str(self.state_path)
        from .state.postgres import redact_url

        return redact_url(self.state_url)

    @property
    def simulator_file(self) -> Path:
        """The embedded simulator's cloud lives beside the state file."""
        return self.state_path.parent / "simulator.json"


RequestHook = Callable[[str, int], None]


@contextmanager
def open_state(target: Target) -> Iterator[StateStore]:
    """The target's state store, whichever backend holds it; closed (and unlocked) on exit."""
    store = open_store(target.state_location)
    try:
        yield store
    finally:
        store.close()


@asynccontextmanager
async def open_state_async(target: Target, *, read: bool = False) -> AsyncIterator[StateStore]:
    """As `open_state` (`read_state` when `read`), from async code: a database is connected to
    (and its schema checked) and closed in a worker thread, so the event loop goes on meanwhile
    (see `state.offloop`)."""
    if target.state_url is None:
        with read_state(target) if read else open_state(target) as store:
            yield store
        return
    store = await asyncio.to_thread(open_store, target.state_url)
    try:
        yield store
    finally:
        await asyncio.to_thread(store.close)


@asynccontextmanager
async def connect(
    target: Target, on_request: RequestHook | None = None
) -> AsyncIterator[ApiClient]:
    """An API client for the target: the real API, or the embedded simulator (in process)."""
    if target.simulate:
        from .simulator import Simulator, transport  # starlette: only when simulating

        simulator = Simulator(SimulatorConfig(state_file=str(target.simulator_file)))
        settings = ApiSettings(base_url=SIMULATOR_URL, api_key=Secret("simulated"))
        client = ApiClient(settings, transport=transport(simulator), on_request=on_request)
    else:
        client = ApiClient(target.settings, on_request=on_request)
    async with client:
        yield client


def state_exists(target: Target) -> bool:
    return target.state_url is not None or target.state_path.exists()


@contextmanager
def read_state(target: Target) -> Iterator[StateStore]:
    """The target's state for reading: an absent one is an empty throwaway, not created."""
    if state_exists(target):
        with open_state(target) as store:
            yield store
        return
    with tempfile.TemporaryDirectory(prefix="reconciler-") as folder:
        store = open_store(Path(folder) / "empty.db")
        try:
            yield store
        finally:
            store.close()
