"""The batch GC policy: full collections deferred inside a batch, thresholds restored after."""

from __future__ import annotations

import asyncio
import gc

import pytest

from reconciler.gcpolicy import FULL_EVERY, batch, fewer_full_collections


def test_full_collections_are_deferred_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with fewer_full_collections():
        young, middle, full = gc.get_threshold()
        assert (young, middle) == before[:2]
        assert full >= FULL_EVERY
    assert gc.get_threshold() == before


def test_overlapping_batches_restore_once_the_last_one_ends() -> None:
    before = gc.get_threshold()
    first, second = fewer_full_collections(), fewer_full_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # ends before the batch that started after it
    assert gc.get_threshold()[2] >= FULL_EVERY
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


def test_batch_wraps_functions_and_coroutines() -> None:
    before = gc.get_threshold()

    @batch
    def plain(x: int) -> tuple[int, int]:
        return x, gc.get_threshold()[2]

    @batch
    async def waited(x: int) -> tuple[int, int]:
        await asyncio.sleep(0)
        return x, gc.get_threshold()[2]

    assert plain(1)[0] == 1 and plain(1)[1] >= FULL_EVERY
    result = asyncio.run(waited(2))
    assert result[0] == 2 and result[1] >= FULL_EVERY
    assert gc.get_threshold() == before


def test_an_error_inside_still_restores() -> None:
    before = gc.get_threshold()

    @batch
    def failing() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        failing()
    assert gc.get_threshold() == before
