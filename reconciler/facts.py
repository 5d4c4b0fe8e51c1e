"""What is known of the real API's limits and defaults, in one place (API.md).

The manifest model (`spec`), the diff and the simulator all read these numbers, so a default the
server fills in and the default the diff compares against can never drift apart. The simulator
still enforces the limits with its own models: a limit the manifest model forgets fails a test
with the simulator's 422 instead of passing silently.

Sources: the official SDK's types and Gcore's OpenAPI spec (as carried by its generated Terraform
schema). Where the spec is silent the value is marked as assumed; the client never depends on an
assumed default being right (README, "Fidelity").
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

# -- limits (OpenAPI) ---------------------------------------------------------------------------
SCALE_MAX = 300
COOLDOWN_MIN, COOLDOWN_MAX = 1, 3600
POLLING_MIN, POLLING_MAX = 5, 3600
THRESHOLD_MIN, THRESHOLD_MAX = 1, 100
HTTP_RATE_MAX = 1000
HTTP_WINDOW_MAX = 3600
SQS_ACTIVATION_QUEUE_LENGTH_MIN = 1
RETENTION_PERIOD_MAX = 1825  # days

# -- server defaults ----------------------------------------------------------------------------
DEFAULT_TIMEOUT = 120  # SDK docstring
DEFAULT_COOLDOWN_PERIOD = 60  # OpenAPI
DEFAULT_POLLING_INTERVAL = 30  # OpenAPI
# `timeout_seconds` 3 is from the OpenAPI spec; the other timings are assumed (Kubernetes').
PROBE_TIMINGS: MappingProxyType[str, int] = MappingProxyType(
    {
        "failure_threshold": 3,
        "initial_delay_seconds": 0,
        "period_seconds": 10,
        "success_threshold": 1,
        "timeout_seconds": 3,
    }
)
HTTP_GET_DEFAULTS: MappingProxyType[str, Any] = MappingProxyType(
    {"headers": {}, "host": None, "path": "/", "schema": "HTTP"}  # assumed
)
TRIGGER_KEYS = ("cpu", "memory", "gpu_memory", "gpu_utilization", "http", "sqs")
PROBE_KEYS = ("liveness_probe", "readiness_probe", "startup_probe")
PROBE_ACTIONS = ("exec", "http_get", "tcp_socket")
LOGGING_KEYS = ("enabled", "destination_region_id", "topic_name", "retention_policy")

# Fields whose explicit `null` the create schema refuses (schematic paths, `*` for any key).
NOT_NULL_ON_CREATE = frozenset(
    {
        ("envs",),
        ("api_keys",),
        ("auth_enabled",),
        ("containers", "*", "scale", "triggers"),
        ("probes", "*", "probe"),
        *(("probes", "*", "probe", timing) for timing in PROBE_TIMINGS),
        ("probes", "*", "probe", "http_get", "path"),
        ("probes", "*", "probe", "http_get", "schema"),
    }
)
