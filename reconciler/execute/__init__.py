"""Execution: the only stage that changes the world (DESIGN.md §5).

manager   runs a plan: one coroutine per action, each journaled, failures kept apart
create, update, delete, adopt
          one module per verb; each ends in `finish` (submitted -> tasks -> converge ->
          record) and sends through `send_checked` (the resend rule)
journal   the typed write-ahead journal; `resume` finishes what a crash left behind
tasks     the watcher: tasks and deployments polled together, on an injected clock
"""

from .journal import Entry, FollowUp, Intent, Journal, JournalResult, JournalState
from .manager import Executor, unchanged_outcomes
from .outcomes import ActionFailed, ApplyOptions, Event, Outcome, Phase, Reporter, Result
from .resume import resume
from .schedule import PollOptions
from .tasks import Watcher

__all__ = [
    "ActionFailed",
    "ApplyOptions",
    "Entry",
    "Event",
    "Executor",
    "FollowUp",
    "Intent",
    "Journal",
    "JournalResult",
    "JournalState",
    "Outcome",
    "Phase",
    "PollOptions",
    "Reporter",
    "Result",
    "Watcher",
    "resume",
    "unchanged_outcomes",
]
