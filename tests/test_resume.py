"""Resume: finishing a crashed apply from the typed journal, against a fake API on fake time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.execute import ApplyOptions, Intent, Journal, JournalResult, resume
from reconciler.execute.journal import Entry, JournalState
from reconciler.manifests import load_desired
from reconciler.model import DeploymentKey, DesiredDeployment, RecordOutcome
from reconciler.plan import Action, applied_record
from reconciler.state import SqliteStateStore

from .conftest import manifest
from .fakes import FakeApi, FakeTime

KEY = DeploymentKey(1, "alpha-svc")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStateStore]:
    store = SqliteStateStore(tmp_path / "state.db")
    yield store
    store.close()


@pytest.fixture
def desired(tmp_path: Path) -> DesiredDeployment:
    (tmp_path / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    return load_desired([tmp_path / "alpha-svc.yaml"], env={}).deployments[0]


async def _resume(api: FakeApi, store: SqliteStateStore) -> list[Entry]:
    time = FakeTime()
    return await resume(api, store, ApplyOptions(), time.clock)  # type: ignore[arg-type]


def _results(store: SqliteStateStore) -> list[tuple[str, str]]:
    rows = store._db.execute("SELECT result, message FROM journal ORDER BY id").fetchall()
    return [(r[0], r[1]) for r in rows]


def test_an_intent_reads_back_as_written(
    store: SqliteStateStore, desired: DesiredDeployment
) -> None:
    intent = Intent.of(("image",), desired, store.hash_value, "rev-1")
    journal = Journal(store)
    entry_id = journal.open(KEY, Action.UPDATE, intent)
    journal.submitted(entry_id, ["t-1"])
    [entry] = journal.unfinished()
    assert (entry.id, entry.key, entry.action) == (entry_id, KEY, Action.UPDATE)
    assert (entry.state, entry.task_ids) == (JournalState.SUBMITTED, ("t-1",))
    assert entry.intent == intent
    record = entry.intent.record_as(RecordOutcome.RESUMED, 5.0)
    expected = applied_record(
        desired, store.hash_value, applied_at=5.0, outcome=RecordOutcome.RESUMED, revision="rev-1"
    )
    assert record == expected
    assert Intent.of((), None, store.hash_value, None).record_as(RecordOutcome.RESUMED, 1) is None


async def test_nothing_unfinished_means_nothing_to_do(store: SqliteStateStore) -> None:
    assert await _resume(FakeApi(), store) == []


async def test_journaled_tasks_are_polled_to_the_end_and_recorded(
    store: SqliteStateStore, desired: DesiredDeployment
) -> None:
    api = FakeApi()
    api.task_state = "RUNNING"
    journal = Journal(store)
    entry_id = journal.open(KEY, Action.CREATE, Intent.of((), desired, store.hash_value, None))
    [task] = await api.create_deployment(1, {"name": "alpha-svc", **desired.spec.body()})
    journal.submitted(entry_id, [task])
    api.fail["get_task"].append(lambda: api.finish_tasks())  # type: ignore[func-returns-value]
    [entry] = await _resume(api, store)
    assert entry.id == entry_id
    assert store.records()[KEY].outcome is RecordOutcome.RESUMED
    assert _results(store) == [(JournalResult.RESUMED, "")]


async def test_a_failed_task_is_recorded_as_failed(
    store: SqliteStateStore, desired: DesiredDeployment
) -> None:
    api = FakeApi()
    api.task_state, api.task_error = "ERROR", "quota"
    journal = Journal(store)
    entry_id = journal.open(KEY, Action.UPDATE, Intent.of((), desired, store.hash_value, None))
    journal.submitted(entry_id, await api.create_deployment(1, {"name": "alpha-svc"}))
    await _resume(api, store)
    assert store.records()[KEY].outcome is RecordOutcome.FAILED
    assert _results(store) == [(JournalResult.FAILED, "quota")]


async def test_a_finished_delete_forgets_the_record(
    store: SqliteStateStore, desired: DesiredDeployment
) -> None:
    api = FakeApi()
    store.save_record(
        applied_record(desired, store.hash_value, applied_at=1, outcome=RecordOutcome.CONVERGED)
    )
    api.seed(1, "alpha-svc")
    journal = Journal(store)
    entry_id = journal.open(KEY, Action.DELETE, Intent.of((), None, store.hash_value, None))
    journal.submitted(entry_id, await api.delete_deployment(1, "alpha-svc"))
    await _resume(api, store)
    assert store.records() == {}
    assert _results(store) == [(JournalResult.RESUMED, "")]


async def test_a_create_without_tasks_is_looked_up_by_name(
    store: SqliteStateStore, desired: DesiredDeployment
) -> None:
    api = FakeApi()
    journal = Journal(store)
    intent = Intent.of((), desired, store.hash_value, None)
    journal.open(KEY, Action.CREATE, intent)
    await _resume(api, store)  # never happened: left to the fresh plan
    assert store.records() == {}
    journal.open(KEY, Action.CREATE, intent)
    api.seed(1, "alpha-svc")
    await _resume(api, store)  # happened: it is ours
    assert store.records()[KEY].outcome is RecordOutcome.RESUMED
    assert [r for r, _ in _results(store)] == [JournalResult.NOT_APPLIED, JournalResult.RESUMED]


async def test_other_entries_without_tasks_are_left_to_the_plan(
    store: SqliteStateStore, desired: DesiredDeployment
) -> None:
    Journal(store).open(KEY, Action.UPDATE, Intent.of((), desired, store.hash_value, None))
    await _resume(FakeApi(), store)
    assert _results(store) == [(JournalResult.REPLANNED, "resumed: re-planned from live state")]
    assert store.records() == {}


async def test_a_task_that_cannot_be_read_fails_the_entry(
    store: SqliteStateStore, desired: DesiredDeployment
) -> None:
    journal = Journal(store)
    entry_id = journal.open(KEY, Action.UPDATE, Intent.of((), desired, store.hash_value, None))
    journal.submitted(entry_id, ["no-such-task"])
    await _resume(FakeApi(), store)
    [(result, message)] = _results(store)
    assert result == JournalResult.FAILED and message.startswith("resumed: ")
