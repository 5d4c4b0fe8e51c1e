"""The executor when the state store refuses a write: an action whose intent cannot be
journaled is never sent and fails alone; one whose result cannot be recorded fails, its entry
left open for the next apply; the others run to their own outcomes either way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from reconciler.engine import fetch_live
from reconciler.execute import ApplyOptions, Executor, Result
from reconciler.manifests import load_desired
from reconciler.plan import PlanOptions, make_plan
from reconciler.state import SqliteStateStore, StateError
from reconciler.state.writes import Answer, CloseEntry, OpenEntry, Write, Writes

from .conftest import manifest
from .fakes import FakeApi, FakeTime


class Refusing(SqliteStateStore):
    """A store whose async session refuses the intent of `no_intent` and every result."""

    no_intent = "bad-svc"
    refuse_results = False
    why = "disk full"

    @asynccontextmanager
    async def writes(self) -> AsyncIterator[Writes]:
        async with super().writes() as inner:
            store = self

            class Session:
                async def commit(self, batch: Sequence[Write]) -> list[Answer]:
                    for one in batch:
                        if isinstance(one, OpenEntry) and one.key.name == store.no_intent:
                            raise StateError(store.why)
                        if isinstance(one, CloseEntry) and store.refuse_results:
                            raise StateError("connection lost")
                    return await inner.commit(batch)

            yield Session()


async def run(root: Path, store: Refusing, api: FakeApi) -> dict[str, tuple[Result, str]]:
    desired = load_desired([root], env={})
    live = await fetch_live(api, {1})  # type: ignore[arg-type]
    plan = make_plan(desired, store.records(), live, store.hash_value, PlanOptions())
    executor = Executor(
        api,  # type: ignore[arg-type]
        store,
        desired.by_key(),
        ApplyOptions(),
        clock=FakeTime().clock,
    )
    return {o.key.name: (o.result, o.error) for o in await executor.run(plan)}


async def test_an_action_that_cannot_be_journaled_is_never_sent(tmp_path: Path) -> None:
    for name in ("bad-svc", "good-svc", "fine-svc"):
        (tmp_path / f"{name}.yaml").write_text(manifest(name))
    store = Refusing(tmp_path / "state.db")
    api = FakeApi()
    try:
        outcomes = await run(tmp_path, store, api)
    finally:
        store.close()
    assert outcomes["bad-svc"][0] is Result.FAILED
    assert "not sent" in outcomes["bad-svc"][1] and "disk full" in outcomes["bad-svc"][1]
    assert {outcomes["good-svc"][0], outcomes["fine-svc"][0]} == {Result.CONVERGED}
    created = sorted(name for method, name in api.calls if method == "create_deployment")
    assert created == ["fine-svc", "good-svc"]


async def test_a_result_that_cannot_be_recorded_fails_and_stays_open(tmp_path: Path) -> None:
    for name in ("one-svc", "two-svc"):
        (tmp_path / f"{name}.yaml").write_text(manifest(name))
    store = Refusing(tmp_path / "state.db")
    store.no_intent = ""
    store.refuse_results = True
    try:
        outcomes = await run(tmp_path, store, FakeApi())
        open_entries = sorted(e.key.name for e in store.unfinished())
    finally:
        store.close()
    for result, error in outcomes.values():
        assert result is Result.FAILED
        # converged, but a bare "connection lost" would not say that the change was made
        assert error == "converged, but its result was not recorded: connection lost"
    assert open_entries == ["one-svc", "two-svc"]  # the next apply settles them from their tasks


async def test_a_sqlite_file_that_cannot_be_written_fails_every_action_unsent(
    tmp_path: Path,
) -> None:
    """A real SQLite failure (here: the connection made read-only) is a StateError naming the
    file, so each action fails alone and nothing is sent."""
    for name in ("one-svc", "two-svc"):
        (tmp_path / f"{name}.yaml").write_text(manifest(name))
    store = Refusing(tmp_path / "state.db")
    store.no_intent = ""
    store._db.execute("PRAGMA query_only = 1")
    api = FakeApi()
    try:
        outcomes = await run(tmp_path, store, api)
    finally:
        store.close()
    for result, error in outcomes.values():
        assert result is Result.FAILED
        assert "not sent" in error and "state.db" in error and "readonly" in error
    assert [c for c in api.calls if c[0] == "create_deployment"] == []


async def test_an_unrecorded_failure_says_so_before_its_log_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed action's message ends in its pods' last log lines: that its result could not
    be written belongs to the message, not to the last log line."""
    from reconciler.errors import ApiError
    from reconciler.execute import manager

    async def with_logs(ctx: object, key: object, message: str) -> str:
        return f"{message}\nlast 1 log line(s):\n  t0 pod-0 Listening on 0.0.0.0:80"

    monkeypatch.setattr(manager, "with_logs", with_logs)
    (tmp_path / "one-svc.yaml").write_text(manifest("one-svc"))
    store = Refusing(tmp_path / "state.db")
    store.no_intent = ""
    store.refuse_results = True
    api = FakeApi()
    api.fail["create_deployment"].append(ApiError("refused", method="POST", path="/deployments"))
    try:
        outcomes = await run(tmp_path, store, api)
    finally:
        store.close()
    result, error = outcomes["one-svc"]
    assert result is Result.FAILED
    assert error.splitlines() == [
        "refused; its result was not recorded: connection lost",
        "last 1 log line(s):",
        "  t0 pod-0 Listening on 0.0.0.0:80",
    ]


async def test_a_state_error_reaches_the_outcome_escaped(tmp_path: Path) -> None:
    """A state store's words (a driver's message) go through the same escaping as the API's:
    no raw escape sequence or line break reaches a terminal or a CI log."""
    (tmp_path / "bad-svc.yaml").write_text(manifest("bad-svc"))
    store = Refusing(tmp_path / "state.db")
    store.why = "disk \x1b[31mfull\n::error::forged"
    try:
        outcomes = await run(tmp_path, store, FakeApi())
    finally:
        store.close()
    result, error = outcomes["bad-svc"]
    assert result is Result.FAILED
    assert "\x1b" not in error and "\n" not in error and "full" in error
