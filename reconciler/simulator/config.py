"""What the simulated cloud knows (flavors, regions), how fast it moves, and how it misbehaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_FLAVORS: tuple[dict[str, Any], ...] = (
    {
        "name": "inference-16vcpu-232gib-1xh100-80gb",
        "cpu": 16.0,
        "memory": 232.0,
        "gpu": 1,
        "gpu_model": "H100",
        "gpu_memory": 80.0,
        "gpu_compute_capability": "9.0",
        "is_gpu_shared": False,
        "description": "1x NVIDIA H100 80GB, 16 vCPU, 232 GiB RAM",
    },
    {
        "name": "inference-32vcpu-464gib-2xh100-80gb",
        "cpu": 32.0,
        "memory": 464.0,
        "gpu": 2,
        "gpu_model": "H100",
        "gpu_memory": 160.0,
        "gpu_compute_capability": "9.0",
        "is_gpu_shared": False,
        "description": "2x NVIDIA H100 80GB, 32 vCPU, 464 GiB RAM",
    },
    {
        "name": "inference-16vcpu-116gib-1xl40s-48gb",
        "cpu": 16.0,
        "memory": 116.0,
        "gpu": 1,
        "gpu_model": "L40S",
        "gpu_memory": 48.0,
        "gpu_compute_capability": "8.9",
        "is_gpu_shared": False,
        "description": "1x NVIDIA L40S 48GB, 16 vCPU, 116 GiB RAM",
    },
    {
        "name": "inference-4vcpu-16gib",
        "cpu": 4.0,
        "memory": 16.0,
        "gpu": 0,
        "gpu_model": "",
        "gpu_memory": 0.0,
        "gpu_compute_capability": "",
        "is_gpu_shared": False,
        "description": "CPU only, 4 vCPU, 16 GiB RAM",
    },
)

# Region ids of Gcore's inference edge locations are opaque numbers; these are the simulator's.
DEFAULT_REGIONS: tuple[int, ...] = (1, 2, 3, 4)
DEFAULT_CAPACITY = 1000  # replicas of each flavor free in each region


@dataclass(frozen=True)
class Timings:
    """Seconds each phase of the simulated lifecycle lasts.

    A task is NEW for `task_queue`, then RUNNING until `task_queue + task_run`; after a create or
    update task finishes, containers come up over `rollout` (PARTIALLYDEPLOYED, ready counting up),
    then the deployment is ACTIVE. The defaults make a deployment ACTIVE in about two seconds.
    """

    task_queue: float = 0.1
    task_run: float = 0.8
    rollout: float = 1.0
    delete: float = 0.5


@dataclass(frozen=True)
class Faults:
    """Misbehaviour to inject. Rates are fractions in [0, 1], drawn from one seeded RNG.

    - `latency`: seconds added to every request.
    - `error_rate`: fraction of requests answered 503 before anything happens.
    - `rate_limit_rate`: fraction answered 429 with `Retry-After` (`retry_after` seconds).
    - `lost_response_rate`: fraction of mutating requests (POST/PATCH/DELETE) that take effect,
      then lose their answer (the connection drops).
    - `task_error_image`: regex; create/update tasks of matching images end in ERROR.
    - `stuck_image`: regex; matching deployments stay PARTIALLYDEPLOYED with a container
      `error_message`.
    """

    seed: int | None = None
    latency: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    lost_response_rate: float = 0.0
    task_error_image: str | None = None
    stuck_image: str | None = None


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes one simulated cloud."""

    api_key: str | None = None  # None: any non-empty key is accepted
    flavors: tuple[dict[str, Any], ...] = DEFAULT_FLAVORS
    regions: tuple[int, ...] = DEFAULT_REGIONS
    timings: Timings = field(default_factory=Timings)
    faults: Faults = field(default_factory=Faults)
    page_cap: int = 100  # the most items one list page holds, whatever `limit` asks
    state_file: str | None = None  # persist the cloud here (JSON) between processes
    # Real-API behaviours the client must survive (README "Fidelity"):
    sparse_answers: bool = False  # answer null wherever the SDK allows; tasks without project
    patch_merge: bool = False  # a PATCH merges nested objects (probes, logging, ingress_opts)
    # available capacity per region and flavor; None: `DEFAULT_CAPACITY` of every flavor everywhere
    capacity: dict[int, dict[str, int]] | None = None

    def capacity_of(self) -> dict[int, dict[str, int]]:
        if self.capacity is not None:
            return self.capacity
        return {r: {f["name"]: DEFAULT_CAPACITY for f in self.flavors} for r in self.regions}
