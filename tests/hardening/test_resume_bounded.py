"""Resume after a crash goes through the request slots (`--parallelism`), and an entry that
cannot be settled now stays journaled while the others are settled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.execute import ApplyOptions, Intent, Journal, resume
from reconciler.manifests import load_desired
from reconciler.model import DeploymentKey
from reconciler.plan import Action
from reconciler.state import SqliteStateStore

from ..conftest import manifest
from ..fakes import FakeApi, FakeTime, server_error

NAMES = [f"svc-{i:03d}" for i in range(40)]
BROKEN = "svc-007"


class CountingApi(FakeApi):
    """Counts GETs in flight at once; the GET of BROKEN always fails (retries used up)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most = 0

    async def get_deployment(self, project_id: int, name: str):  # type: ignore[no-untyped-def]
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0)  # let the others pile up if nothing bounds them
            await asyncio.sleep(0)
            if name == BROKEN:
                raise server_error("GET", name)
            return await super().get_deployment(project_id, name)
        finally:
            self.in_flight -= 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStateStore]:
    folder = tmp_path / "m"
    folder.mkdir()
    for name in NAMES:
        (folder / f"{name}.yaml").write_text(manifest(name))
    store = SqliteStateStore(tmp_path / "state.db")
    journal = Journal(store)
    for found in load_desired([folder], env={}).deployments:
        intent = Intent.of((), found, store.hash_value, None)
        journal.open(found.key, Action.CREATE, intent)  # a crash right after each POST
    yield store
    store.close()


async def test_resume_is_bounded_and_one_bad_entry_does_not_stop_the_rest(
    store: SqliteStateStore,
) -> None:
    api = CountingApi()
    for name in NAMES[::2]:
        api.seed(1, name)  # half of the creates had happened
    time = FakeTime()
    settled = await resume(api, store, ApplyOptions(parallelism=4), time.clock)  # type: ignore[arg-type]
    assert api.most <= 4
    assert len(settled) == len(NAMES) - 1
    left = Journal(store).unfinished()
    assert [e.key for e in left] == [DeploymentKey(1, BROKEN)]
    owned = {k.name for k in store.records()}
    assert owned == {n for n in NAMES[::2] if n != BROKEN}
