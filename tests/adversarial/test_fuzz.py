"""A bounded fuzz of the YAML loader: any text gives deployments or located errors, never an
exception, and quickly."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.manifests import load_text

from .battery import VALID

# YAML's punctuation and a few hostile characters, so the fuzz reaches the parser's corners
PUNCTUATION = list(":-?,[]{}#&*!|>'\"%@`\\ \n\t~<=$.0123456789abcxyz")
HOSTILE = ["\x00", "\x1b", "\x85", "\u2028", "\ufeff", "${A}", "<<", "!!", "---", "..."]
ALPHABET = st.sampled_from([*PUNCTUATION, *HOSTILE])
FRAGMENTS = st.lists(ALPHABET, max_size=80).map("".join)


def check(text: str) -> None:
    started = time.perf_counter()
    _, errors = load_text(text, name="fuzz.yaml", env={"A": "x"})
    assert time.perf_counter() - started < 5
    for error in errors:
        assert error.file == "fuzz.yaml" and error.line >= 1 and error.column >= 1
        assert "\x1b" not in str(error) and "\n" not in str(error)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FRAGMENTS)
def test_any_text(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(VALID)), FRAGMENTS, st.integers(0, 3))
def test_a_valid_manifest_with_garbage_spliced_in(at: int, garbage: str, cut: int) -> None:
    check(VALID[:at] + garbage + VALID[at + cut :])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes(data: bytes) -> None:
    _, errors = load_text(data, name="fuzz.yaml", env={})
    assert all(e.line >= 1 for e in errors)
