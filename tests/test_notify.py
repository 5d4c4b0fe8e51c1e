"""Notifications against a local HTTP receiver: one event per change of state, retries, bounds."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from reconciler.notify import Event, Kind, Notifier, NotifyOptions

from .conftest import eventually, manifest
from .inproc import run_cli
from .receiver import Receiver
from .uiharness import BackgroundServer, Served, serving

QUICK = NotifyOptions(attempts=3, backoff=0.01, timeout=5)


async def delivered(notifier: Notifier) -> None:
    await eventually(lambda: not any(r.pending or r.busy for r in notifier.receivers))


async def reconcile(served: Served) -> None:
    runs = served.service.runs
    served.service.backoff.clear()  # retry the failing deployment every time: no free dedup
    served.service.trigger("test")
    await served.settled(runs + 1)


def event(kind: Kind = Kind.FAILED, subject: str = "1/svc") -> Event:
    return Event(kind, subject, "task error", "abc123", 1_800_000_000.0)


async def test_one_event_per_change_of_state_across_reconciles(
    tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    (folder / "good-svc.yaml").write_text(manifest("good-svc", description="as written"))
    (folder / "bad-svc.yaml").write_text(manifest("bad-svc", image="broken/model:1"))
    with Receiver() as receiver:
        notifier = Notifier([receiver.url], QUICK)
        async with serving(tmp_path, folder, sim, listeners=[notifier]) as served:
            # 1: bad-svc fails (the start); 2 and 3 fail again: still one event
            await reconcile(served)
            (folder / "broken.yaml").write_text(manifest("x"))  # name too short: invalid
            await reconcile(served)
            served.sim.simulator.cloud.update(1, "good-svc", {"description": "by hand"}, "r")
            await reconcile(served)  # 4: drift found (and corrected)
            (folder / "broken.yaml").unlink()
            await reconcile(served)  # 5: manifests valid again, no drift left
            (folder / "bad-svc.yaml").write_text(manifest("bad-svc", image="nginx:1.27"))
            await reconcile(served)  # 6: bad-svc converges
            await reconcile(served)  # 7: nothing changes
            await delivered(notifier)
            runs = served.service.runs
        await notifier.aclose()
    assert runs >= 7
    assert receiver.events() == [
        ("deployment_failed", "1/bad-svc"),
        ("manifest_error", "manifests"),
        ("drift_detected", "1/good-svc"),
        ("manifest_fixed", "manifests"),
        ("drift_resolved", "1/good-svc"),
        ("deployment_recovered", "1/bad-svc"),
    ]
    first = receiver.requests[0][1]
    assert first["problem"] is True and "broken/model" in first["message"]
    assert first["text"].startswith(":red_circle: reconciler: 1/bad-svc: deployment failed")
    assert "broken.yaml:3" in receiver.requests[1][1]["message"]


async def test_a_failing_receiver_is_retried_with_growing_waits() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    with Receiver([500, 503]) as receiver:
        notifier = Notifier([receiver.url], NotifyOptions(attempts=4, backoff=0.5), sleep=sleep)
        notifier.send(event())
        await delivered(notifier)
        await notifier.aclose()
    assert len(receiver.requests) == 3
    assert receiver.requests[0] == receiver.requests[2]  # the same event, resent
    assert waits == [0.5, 1.0]
    assert notifier.receivers[0].sent == 1


async def test_a_client_error_is_not_retried_and_retries_are_bounded() -> None:
    with Receiver([400]) as refusing, Receiver([500] * 10) as broken:
        notifier = Notifier([refusing.url, broken.url], QUICK)
        notifier.send(event())
        await delivered(notifier)
        await notifier.aclose()
    assert len(refusing.requests) == 1
    assert len(broken.requests) == QUICK.attempts
    assert [r.failed for r in notifier.receivers] == [1, 1]


async def test_a_hanging_receiver_never_blocks_the_loop_and_its_queue_is_bounded(
    tmp_path: Path, folder: Path, sim: BackgroundServer
) -> None:
    (folder / "bad-svc.yaml").write_text(manifest("bad-svc", image="broken/model:1"))
    with Receiver(hang=True) as slow, Receiver() as fast:
        notifier = Notifier([slow.url, fast.url], NotifyOptions(queue=3, timeout=60))
        async with serving(tmp_path, folder, sim, listeners=[notifier]) as served:
            await eventually(lambda: slow.waiting == 1)  # the first event hangs there
            for _ in range(3):
                await reconcile(served)  # the loop goes on meanwhile
            for i in range(10):
                notifier.send(event(Kind.DRIFT, f"1/svc-{i}"))
            # the fast receiver is not held by the slow one (both keep only the newest 3)
            await eventually(lambda: len(fast.requests) == 4)
            held = notifier.receivers[0]
            assert slow.waiting == 1 and len(held.pending) == 3 and held.dropped == 7
            assert fast.events()[-1] == ("drift_detected", "1/svc-9")
            slow.release.set()
            await delivered(notifier)
        await notifier.aclose()
    assert len(slow.requests) == 4  # the first event, then the 3 newest the bound kept
    assert slow.events()[-1] == ("drift_detected", "1/svc-9")


async def test_the_urls_secret_parts_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with Receiver([500] * 5) as receiver:
        url = f"http://bot:pa55word@127.0.0.1:{receiver.port}/services/T0/SECRETPATH?t=QSECRET"
        notifier = Notifier([url], QUICK)
        notifier.send(event())
        await delivered(notifier)
        await notifier.aclose()
    assert receiver.requests[0][0] == "/services/T0/SECRETPATH?t=QSECRET"  # used whole
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"http://***@127.0.0.1:{receiver.port}/***" in text
    for secret in ("pa55word", "SECRETPATH", "QSECRET", "bot:"):
        assert secret not in text


def test_serve_refuses_a_notify_url_that_is_not_http(tmp_path: Path) -> None:
    args = ["serve", "--simulate", "--manifests", str(tmp_path), "--state", str(tmp_path / "s.db")]
    done = run_cli([*args, "--notify-url", "ftp://u:secretpw@host/x"], tmp_path, dict(os.environ))
    assert done.returncode != 0
    assert "--notify-url: expected an http(s) URL" in done.stderr
    assert "secretpw" not in done.stderr and "Traceback" not in done.stderr


def test_the_tracker_reports_a_time_out_and_its_change_to_a_failure_once_each() -> None:
    from types import SimpleNamespace
    from typing import cast

    from reconciler.execute import Outcome, Result
    from reconciler.model import DeploymentKey
    from reconciler.notify import Tracker
    from reconciler.plan import Action
    from reconciler.service import Service

    key = DeploymentKey(1, "svc")

    def service(result: str, outcome: Result | None) -> Service:
        outcomes = [Outcome(key, Action.UPDATE, outcome, error="why")] if outcome else []
        return cast(
            Service,
            SimpleNamespace(
                last=SimpleNamespace(result=result, revision="r1"),
                last_report=SimpleNamespace(outcomes=outcomes),
                manifest_errors=[],
                drifted={},
                rows=[],
            ),
        )

    tracker = Tracker(clock=lambda: 0.0)
    seen = [
        [e.kind.value for e in tracker.observe(service(result, outcome))]
        for result, outcome in [
            ("failed", Result.TIMED_OUT),
            ("failed", Result.TIMED_OUT),
            ("error", None),  # the API was down: nothing looked at, nothing changes
            ("failed", Result.FAILED),
            ("ok", Result.SKIPPED),
            ("ok", Result.CONVERGED),
            ("ok", Result.CONVERGED),
        ]
    ]
    assert seen == [
        ["deployment_timed_out"],
        [],
        [],
        ["deployment_failed"],
        [],
        ["deployment_recovered"],
        [],
    ]
