"""A wire-faithful simulator of Gcore's inference deployments and tasks API."""

from .app import LostResponse, Simulator
from .cloud import Cloud
from .config import DEFAULT_FLAVORS, DEFAULT_REGIONS, Faults, SimulatorConfig, Timings
from .server import BackgroundServer, serve, transport

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
