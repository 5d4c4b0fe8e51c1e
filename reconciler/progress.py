"""Showing an apply while it runs.

On a terminal: a live table, one line per deployment (queued -> submitted -> task RUNNING ->
deploying 1/3 ready -> converged / failed with the reason), and an overall bar (rich). Elsewhere:
one timestamped line per phase change, as text or as JSON lines (`--log-format json`).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .execute import Event, Outcome, Result
from .model import DeploymentKey
from .plan import Action

STYLES = {
    "converged": "green",
    "failed": "red",
    "timed_out": "red",
    "deploying": "cyan",
    "task": "blue",
    "queued": "dim",
}
SYMBOLS = {"converged": "✓", "failed": "✗", "timed_out": "✗"}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class LogReporter:
    """One line per phase change: `TIME DEPLOYMENT ACTION PHASE: MESSAGE`, or JSON lines."""

    def __init__(self, stream: TextIO | None = None, *, fmt: str = "text") -> None:
        self.stream = stream or sys.stderr
        self.fmt = fmt
        self._last: dict[DeploymentKey, tuple[str, str]] = {}

    def __call__(self, event: Event) -> None:
        if self._last.get(event.key) == (event.phase, event.message):
            return
        self._last[event.key] = (event.phase, event.message)
        if self.fmt == "json":
            record: dict[str, Any] = {
                "time": _stamp(),
                "deployment": str(event.key),
                "action": event.action.value,
                "phase": event.phase,
                "message": event.message,
            }
            if event.total:
                record.update(ready=event.ready, total=event.total)
            line = json.dumps(record)
        else:
            text = f"{_stamp()} {event.key} {event.action.value} {event.phase}"
            line = f"{text}: {event.message}" if event.message else text
        print(line, file=self.stream, flush=True)

    def __enter__(self) -> LogReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LiveReporter:
    """A live table on a terminal: a line per deployment and an overall bar."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.rows: dict[DeploymentKey, tuple[Action, str, str, float]] = {}
        self.progress = Progress(
            TextColumn("[bold]apply"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.bar = self.progress.add_task("apply", total=0)
        self.live = Live(self._render(), console=self.console, refresh_per_second=8)

    def __call__(self, event: Event) -> None:
        started = self.rows.get(event.key, (event.action, "", "", time.monotonic()))[3]
        self.rows[event.key] = (event.action, event.phase, event.message, started)
        done = sum(1 for _, phase, _, _ in self.rows.values() if phase in SYMBOLS)
        self.progress.update(self.bar, total=len(self.rows), completed=done)
        self.live.update(self._render())

    def _render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        rows = sorted(self.rows.items())
        room = max(3, self.console.size.height - 4)
        hidden = 0
        if len(rows) > room:  # too many for the screen: show what is still moving, or failed
            shown = [r for r in rows if r[1][1] != "converged"][:room]
            hidden = len(rows) - len(shown)
            rows = shown
        for key, (action, phase, message, started) in rows:
            symbol = SYMBOLS.get(phase, action.symbol)
            style = STYLES.get(phase, "")
            elapsed = f"{time.monotonic() - started:5.1f}s" if phase not in SYMBOLS else ""
            table.add_row(
                Text(symbol, style=style),
                Text(str(key), style="bold"),
                Text(action.value),
                Text(message or phase, style=style),
                Text(elapsed, style="dim"),
            )
        if hidden:
            table.add_row(Text(""), Text(f"… and {hidden} more (converged or queued)", style="dim"))
        return Group(table, self.progress)

    def __enter__(self) -> LiveReporter:
        self.live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.live.update(self._render())
        self.live.__exit__(exc_type, exc, tb)


def _result_words(outcome: Outcome) -> str:
    """`converged in 2.3s`, `deleted in 0.6s`, `failed: <error>`, `timed out after 900s while …`
    (never `timed_out: timed out`, nor a delete that "converged")."""
    if outcome.result is Result.CONVERGED:
        done = "deleted" if outcome.action is Action.DELETE else "converged"
        return f"{done} in {outcome.seconds:.1f}s"
    if outcome.result is Result.SUBMITTED:
        return "submitted (not waited for; the next apply follows it up)"
    if outcome.result is Result.TIMED_OUT:
        return outcome.error or "timed out"
    return f"{outcome.result.value}: {outcome.error}" if outcome.error else outcome.result.value


def summary_lines(outcomes: list[Outcome], seconds: float) -> list[str]:
    """The per-deployment summary that ends an apply, then the totals."""
    lines = []
    for outcome in outcomes:
        if outcome.result is Result.SKIPPED:
            continue  # counted below as unchanged
        symbol = SYMBOLS.get(outcome.result.value, "·")
        text = f"{symbol} {outcome.key} {outcome.action.value}: {_result_words(outcome)}"
        lines.append(text)
    counts = {r: sum(1 for o in outcomes if o.result is r) for r in Result}
    lines.append(
        f"Apply: {counts[Result.CONVERGED]} converged, {counts[Result.FAILED]} failed, "
        f"{counts[Result.TIMED_OUT]} timed out, {counts[Result.SKIPPED]} unchanged"
        + (f", {counts[Result.SUBMITTED]} submitted" if counts[Result.SUBMITTED] else "")
        + f" in {seconds:.1f}s."
    )
    return lines
