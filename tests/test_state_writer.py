"""`execute.writer.StateWriter`: the writes of actions reaching them together are committed in
one transaction, each caller waits for its own, and one bad write fails only its caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler.execute.journal import JournalResult
from reconciler.execute.writer import StateWriter
from reconciler.model import DeploymentKey
from reconciler.state import open_store
from reconciler.state.writes import Answer, CloseEntry, OpenEntry, Write


class Recording:
    """A `Writes` that remembers each batch; a batch holding `poison` fails whole."""

    def __init__(self, poison: int | None = None) -> None:
        self.batches: list[list[Write]] = []
        self.poison = poison
        self.next_id = 0

    async def commit(self, batch: Sequence[Write]) -> list[Answer]:
        await asyncio.sleep(0)  # a real session awaits its server
        if any(isinstance(w, CloseEntry) and w.entry_id == self.poison for w in batch):
            raise RuntimeError("constraint failed")
        self.batches.append(list(batch))
        answers: list[Answer] = []
        for write in batch:
            if isinstance(write, OpenEntry):
                self.next_id += 1
                answers.append(self.next_id)
            else:
                answers.append(None)
        return answers


def key(n: int) -> DeploymentKey:
    return DeploymentKey(1, f"d{n}")


def test_writes_made_in_one_turn_share_one_commit_and_get_their_own_answers() -> None:
    writes = Recording()
    writer = StateWriter(writes)

    async def main() -> list[list[Answer]]:
        return list(
            await asyncio.gather(
                *(writer.write(OpenEntry(key(n), "create", {})) for n in range(50))
            )
        )

    answers = asyncio.run(main())
    assert [len(b) for b in writes.batches] == [50]
    assert writer.commits == 1
    assert [a for [a] in answers] == list(range(1, 51))
    assert [w.key for w in writes.batches[0]] == [key(n) for n in range(50)]  # type: ignore[union-attr]


def test_writes_queued_while_a_commit_runs_go_in_the_next_one() -> None:
    writes = Recording()
    writer = StateWriter(writes)

    async def main() -> None:
        first = asyncio.ensure_future(writer.write(OpenEntry(key(0), "create", {})))
        await asyncio.sleep(0)  # the commit of the first has begun
        await asyncio.gather(first, *(writer.write(CloseEntry(n, "converged")) for n in range(3)))

    asyncio.run(main())
    assert [len(b) for b in writes.batches] == [1, 3]


def test_a_failing_write_fails_its_caller_only() -> None:
    writes = Recording(poison=2)
    writer = StateWriter(writes)

    async def main() -> list[object]:
        return list(
            await asyncio.gather(
                *(writer.close(n, JournalResult.CONVERGED) for n in range(4)),
                return_exceptions=True,
            )
        )

    results = asyncio.run(main())
    assert [type(r).__name__ for r in results] == [
        "NoneType",
        "NoneType",
        "RuntimeError",
        "NoneType",
    ]
    committed = sorted(w.entry_id for b in writes.batches for w in b)  # type: ignore[union-attr]
    assert committed == [0, 1, 3]


def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    writes = Recording()
    writer = StateWriter(writes)

    async def main() -> list[Answer]:
        gone = asyncio.ensure_future(writer.write(CloseEntry(1, "converged")))
        kept = asyncio.ensure_future(writer.write(OpenEntry(key(1), "create", {})))
        await asyncio.sleep(0)
        gone.cancel()
        return await kept

    assert asyncio.run(main()) == [1]  # the kept write's own answer
    assert len(writes.batches) == 1


@pytest.mark.parametrize("count", [1, 40])
def test_an_apply_turn_on_a_real_store_is_one_transaction(tmp_path: Path, count: int) -> None:
    """On SQLite: `count` intents opened together are one commit, and all are in the journal."""
    store = open_store(tmp_path / "state.db")

    async def main() -> StateWriter:
        async with store.writes() as writes:
            writer = StateWriter(writes)
            await asyncio.gather(
                *(writer.write(OpenEntry(key(n), "create", {})) for n in range(count))
            )
            return writer

    try:
        assert asyncio.run(main()).commits == 1
        assert sorted(e.key.name for e in store.unfinished()) == sorted(
            f"d{n}" for n in range(count)
        )
    finally:
        store.close()


def test_a_cancelled_drain_leaves_no_caller_waiting_and_commits_nothing_later() -> None:
    """Should the task that commits be cancelled, its callers are cancelled with it, the one in
    flight and the ones queued behind it, never left waiting forever; and a queued write its
    caller was told is cancelled stays unwritten: the next drain commits its own writes only."""

    class StuckOnce:
        def __init__(self) -> None:
            self.batches: list[list[Write]] = []
            self.stuck = True

        async def commit(self, batch: Sequence[Write]) -> list[Answer]:
            if self.stuck:
                self.stuck = False
                await asyncio.Event().wait()  # a server that never answers
            self.batches.append(list(batch))
            return [None for _ in batch]

    writes = StuckOnce()
    writer = StateWriter(writes)

    async def main() -> list[bool]:
        first = asyncio.ensure_future(writer.write(CloseEntry(1, "converged")))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the drain is committing the first
        second = asyncio.ensure_future(writer.write(CloseEntry(2, "converged")))
        await asyncio.sleep(0)
        assert writer._drain is not None
        writer._drain.cancel()
        _, pending = await asyncio.wait({first, second}, timeout=5)
        assert not pending
        await writer.write(CloseEntry(3, "converged"))
        return [f.cancelled() for f in (first, second)]

    assert asyncio.run(main()) == [True, True]
    assert writes.batches == [[CloseEntry(3, "converged")]]  # not the cancelled second's
