"""`reconciler logs` and `reconciler rotate-key`."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from reconciler.api.objects import InferenceObjects, LogLine
from reconciler.cli import main
from reconciler.cli.objects import follow_logs, printable
from reconciler.engine import Target, connect
from reconciler.kinds import Kind


def test_log_text_cannot_drive_the_terminal() -> None:
    assert printable("ok \x1b[31mred\x1b[0m\r") == "ok \\x1b[31mred\\x1b[0m\\r"


async def test_follow_prints_each_line_once_and_sleeps_on_the_given_clock() -> None:
    pages = [
        [LogLine(message="a", pod="p", time="t1")],
        [LogLine(message="a", pod="p", time="t1"), LogLine(message="b", pod="p", time="t2")],
        [LogLine(message="b", pod="p", time="t2"), LogLine(message="c", pod="p", time="t3")],
    ]
    feed = iter(pages)
    slept: list[float] = []
    printed: list[str] = []

    async def fetch() -> list[LogLine]:
        return next(feed)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    await follow_logs(fetch, printed.append, sleep=sleep, interval=2.0, rounds=3)

    assert [line.split()[-1] for line in printed] == ["a", "b", "c"]
    assert slept == [2.0, 2.0]


def test_logs_and_rotate_key_against_the_embedded_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "st" / "state.db"
    target = Target.from_env(state=str(state), simulate=True, env={})

    async def seed() -> str:
        async with connect(target) as api:
            _, secret = await InferenceObjects(api).create(
                Kind.API_KEY, 1, "search-clients", {"description": "d"}
            )
            assert secret is not None
            return secret.reveal()

    first = asyncio.run(seed())
    flags = ["--simulate", "--state", str(state), "--project", "1"]

    code = main(["rotate-key", "search-clients", "--auto-approve", *flags])
    out = capsys.readouterr().out

    path = tmp_path / "st" / "secrets" / "1" / "search-clients"
    assert code == 0 and f"secret written to {path}" in out
    second = path.read_text().strip()
    assert second.startswith("sk-") and second != first
    assert second not in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert main(["rotate-key", "no-such-key", "--auto-approve", *flags]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["logs", "no-such-app", *flags]) == 1
