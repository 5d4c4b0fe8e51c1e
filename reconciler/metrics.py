"""Prometheus metrics of the service, in a registry of its own (one per service instance)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from .health import Health, Sync
from .status import StatusRow

disable_created_metrics()  # type: ignore[no-untyped-call]  # `*_created` series: noise


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            "reconciler_reconcile_runs", "Reconcile runs by result.", ["result"], registry=r
        )
        self.duration = Histogram(
            "reconciler_reconcile_duration_seconds",
            "How long a reconcile run took.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
            registry=r,
        )
        self.deployments = Gauge(
            "reconciler_deployments",
            "Owned deployments by sync and health.",
            ["sync", "health"],
            registry=r,
        )
        self.api_requests = Counter(
            "reconciler_api_requests",
            "Requests to the Gcore API by method and status code (0: no answer).",
            ["method", "code"],
            registry=r,
        )
        self.task_wait = Histogram(
            "reconciler_task_wait_seconds",
            "From submitting an action to its task ending.",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
            registry=r,
        )
        self.drift = Counter(
            "reconciler_drift_detected",
            "Deployments found drifted from their manifests.",
            registry=r,
        )
        self.manifest_errors = Gauge(
            "reconciler_manifest_errors",
            "Errors in the manifests at the latest revision.",
            registry=r,
        )
        self.actions = Counter(
            "reconciler_actions",
            "Actions executed, by action and result.",
            ["action", "result"],
            registry=r,
        )
        self.revision = Info(
            "reconciler_last_applied_revision", "The revision last applied.", registry=r
        )
        self.ready = Gauge("reconciler_ready", "1 when the service is ready.", registry=r)
        self.projects_held = Gauge(
            "reconciler_projects_held",
            "Projects this replica reconciles (replicas on PostgreSQL share them).",
            registry=r,
        )
        for sync in Sync:
            for health in Health:
                self.deployments.labels(sync.value, health.value).set(0)

    def request(self, method: str, code: int) -> None:
        self.api_requests.labels(method, str(code)).inc()

    def observe_status(self, rows: Iterable[StatusRow]) -> None:
        counts: dict[tuple[str, str], int] = {}
        for row in rows:
            key = (row.sync.value, row.health.value)
            counts[key] = counts.get(key, 0) + 1
        for sync in Sync:
            for health in Health:
                self.deployments.labels(sync.value, health.value).set(
                    counts.get((sync.value, health.value), 0)
                )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0 when absent), for tests and the status page."""
        found = self.registry.get_sample_value(name, labels or {})
        return float(found or 0.0)
