"""A manifest file is read whole, from its descriptor, up to the cap (`discovery.read_file`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.manifests.discovery import _read_up_to, read_file
from reconciler.yamlsource import MAX_FILE_BYTES


@pytest.mark.parametrize("size", [0, 1, 700, 4095, 65_535, 65_536, 65_537, 200_001, MAX_FILE_BYTES])
def test_every_byte_up_to_the_cap_is_read(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "svc.yaml"
    path.write_bytes(data)
    assert read_file(path) == (data, None)


def test_a_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    data, why = read_file(path)
    assert data is None
    assert why == "file is 1.0 MiB; the limit is 1 MiB per manifest file"


@pytest.mark.parametrize("stated", [0, 10, 100, 5000])
def test_a_size_that_is_wrong_only_sizes_the_first_read(tmp_path: Path, stated: int) -> None:
    """fstat's size may be stale (a file that grew) or zero (some special files)."""
    data = os.urandom(70_000)
    path = tmp_path / "svc.yaml"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _read_up_to(fd, MAX_FILE_BYTES + 1, stated) == data
    finally:
        os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _read_up_to(fd, 1000, stated) == data[:1000]
    finally:
        os.close(fd)
