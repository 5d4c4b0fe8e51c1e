"""Talking to Gcore's inference API: the async client and typed views of its answers."""

from .answers import Listing, RetryPolicy, Unreadable
from .client import ApiClient
from .models import (
    ContainerView,
    Deployment,
    DeploymentStatus,
    DeployStatus,
    Flavor,
    FlavorCapacity,
    RegionCapacity,
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
    "FlavorCapacity",
    "Listing",
    "RegionCapacity",
    "RetryPolicy",
    "ScaleView",
    "Task",
    "TaskState",
    "Unreadable",
]
