"""Talking to Gcore's inference API: the async client and typed views of its answers."""

from .client import ApiClient, RetryPolicy
from .models import (
    ContainerView,
    Deployment,
    DeploymentStatus,
    DeployStatus,
    Flavor,
    ScaleView,
    Task,
    TaskState,
)

__all__ = [
    "ApiClient",
    "ContainerView",
    "DeployStatus",
    "Deployment",
    "DeploymentStatus",
    "Flavor",
    "RetryPolicy",
    "ScaleView",
    "Task",
    "TaskState",
]
