"""A wire-faithful simulator of Gcore's inference deployments and tasks API.

The names load on first use (PEP 562): `reconciler.simulator.config` (plain dataclasses the CLI
reads for its defaults) must not pull in starlette and uvicorn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import LostResponse, Simulator
    from .cloud import Cloud
    from .config import DEFAULT_FLAVORS, DEFAULT_REGIONS, Faults, SimulatorConfig, Timings
    from .server import BackgroundServer, serve, transport

_WHERE = {
    "DEFAULT_FLAVORS": "config",
    "DEFAULT_REGIONS": "config",
    "BackgroundServer": "server",
    "Cloud": "cloud",
    "Faults": "config",
    "LostResponse": "app",
    "Simulator": "app",
    "SimulatorConfig": "config",
    "Timings": "config",
    "serve": "server",
    "transport": "server",
}

__all__ = [
    "DEFAULT_FLAVORS",
    "DEFAULT_REGIONS",
    "BackgroundServer",
    "Cloud",
    "Faults",
    "LostResponse",
    "Simulator",
    "SimulatorConfig",
    "Timings",
    "serve",
    "transport",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
