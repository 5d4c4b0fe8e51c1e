"""Every hostile case through `validate` and `plan --simulate`: a located one-line error (or a
rightful acceptance), no traceback, no hang, no HTTP request, no unsafe output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .battery import LIMIT, Case, all_cases, environment, run_case

CASES = all_cases()


@pytest.fixture(autouse=True)
def _env() -> Iterator[None]:
    with environment():
        yield


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 220
    assert sum(c.line is None for c in CASES) >= 10  # and some must be accepted


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_input(case: Case, command: str, tmp_path: Path) -> None:
    outcome, detail, run = run_case(case, tmp_path / "case", command)
    assert outcome == "held", f"{outcome}: {detail}"
    assert run.seconds < LIMIT
    if case.line is not None:
        assert run.code == 1 and run.requests == 0
