"""What running a plan reports: options in, events while it runs, an outcome per deployment."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from ..model import DeploymentKey
from ..plan import Action, Reason
from .schedule import PollOptions


@dataclass(frozen=True)
class ApplyOptions:
    parallelism: int = 16
    timeout: float = 900.0
    degraded_grace: float = 60.0
    poll: PollOptions = field(default_factory=PollOptions)
    adopt: bool = True  # False (--no-adopt): a create answered 409 by a live namesake fails
    wait: bool = True  # False (--no-wait): submit and journal, then leave it to the next run


class Result(StrEnum):
    CONVERGED = "converged"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    SUBMITTED = "submitted"  # --no-wait: sent and journaled; the next apply follows it up

    @property
    def ok(self) -> bool:
        return self in (Result.CONVERGED, Result.SKIPPED, Result.SUBMITTED)


class Phase(StrEnum):
    """Where one deployment's action stands; the last three end it (as its `Result`)."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    ADOPTING = "adopting"
    SUBMITTED = "submitted"
    TASK = "task"
    DEPLOYING = "deploying"
    DELETING = "deleting"
    CONVERGED = "converged"
    FAILED = "failed"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in (Phase.CONVERGED, Phase.FAILED, Phase.TIMED_OUT)


@dataclass(frozen=True)
class Outcome:
    key: DeploymentKey
    action: Action
    result: Result
    task_ids: tuple[str, ...] = ()
    error: str = ""
    seconds: float = 0.0
    reason: Reason | None = None  # the plan's reason, for skipped (unchanged) deployments


@dataclass(frozen=True)
class Event:
    """A phase change of one deployment, for progress output."""

    key: DeploymentKey
    action: Action
    phase: Phase
    message: str = ""
    ready: int = 0
    total: int = 0
    outcome: Outcome | None = None


class Reporter(Protocol):
    def __call__(self, event: Event) -> None: ...


class ActionFailed(Exception):
    """Ends one action with `result` and a message naming why; the others go on."""

    def __init__(self, message: str, result: Result = Result.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.result = result
