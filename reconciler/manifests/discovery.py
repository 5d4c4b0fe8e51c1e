"""Finding manifest files under the given paths, and reading one file within the size cap."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..yamlsource import MAX_FILE_BYTES
from .wording import ManifestError

SUFFIXES = (".yaml", ".yml")


def discover(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[ManifestError]]:
    """The manifest files under `paths`: files as given, directories searched recursively for
    `*.yaml`/`*.yml`, hidden entries skipped, symlinks leaving their root refused."""
    found: list[tuple[Path, Path]] = []  # (real path, path as given or walked)
    errors: list[ManifestError] = []
    for given in paths:
        root = Path(given)
        if root.is_file():
            found.append((root.resolve(), root))
            continue
        if not root.is_dir():
            errors.append(ManifestError(str(root), 1, 1, "", "no such file or directory"))
            continue
        real_root = root.resolve()
        seen_dirs = {real_root}
        for folder, dirnames, filenames in os.walk(root, followlinks=True):
            kept = []
            for name in sorted(dirnames):
                sub = Path(folder, name)
                real = sub.resolve()
                if name.startswith("."):
                    continue
                if not real.is_relative_to(real_root):
                    errors.append(
                        ManifestError(str(sub), 1, 1, "", f"symlink leaves {root}; not followed")
                    )
                elif real not in seen_dirs:
                    seen_dirs.add(real)
                    kept.append(name)
            dirnames[:] = kept
            real_folder = Path(folder).resolve()  # one resolve per folder, not per file
            for name in sorted(filenames):
                if name.startswith(".") or not name.endswith(SUFFIXES):
                    continue
                path = Path(folder, name)
                real = path.resolve() if path.is_symlink() else real_folder / name
                if not real.is_relative_to(real_root):
                    errors.append(
                        ManifestError(str(path), 1, 1, "", f"symlink leaves {root}; not read")
                    )
                    continue
                found.append((real, path))
    unique: dict[Path, Path] = {}
    for real, path in sorted(found, key=lambda pair: pair[1]):
        unique.setdefault(real, path)  # one file reached by two paths is read once
    return sorted(unique.values()), errors


def read_file(path: Path) -> tuple[bytes | None, str | None]:
    """The file's bytes, or why not; a file over the cap is refused without reading it."""
    try:
        size = path.stat().st_size
        if size <= MAX_FILE_BYTES:
            with path.open("rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
            size = len(data)
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    if size > MAX_FILE_BYTES:
        mib = size / (1 << 20)
        cap = MAX_FILE_BYTES / (1 << 20)
        return None, f"file is {mib:.1f} MiB; the limit is {cap:g} MiB per manifest file"
    return data, None
