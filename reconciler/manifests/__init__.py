"""Manifests to desired state: find the files, read the envelopes, validate every field.

All problems of all files are collected and reported together, sorted by file and line, each as
`FILE:LINE:COL: PATH: MESSAGE`; any problem means no desired state at all (nothing is applied
from a half-valid set). The work is split in the order it happens: `discovery` (which files),
`documents` (one file's text to deployments) and `wording` (problems in words).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..gcpolicy import batch
from ..kinds import DesiredObject, ObjectKey
from ..model import DeploymentKey, DesiredDeployment, DesiredState
from ..spec import NAME_RE
from ..yamlsource import MAX_FILE_BYTES
from .discovery import SUFFIXES, discover, read_file
from .documents import Found, build
from .objects import SecretRoots
from .wording import ManifestError, ManifestErrors, format_path


def _file(
    path: Path,
    env: Mapping[str, str],
    default_project_id: int | None,
    errors: list[ManifestError],
    roots: SecretRoots,
) -> list[Found]:
    data, why = read_file(path)
    if data is None:
        errors.append(ManifestError(str(path), 1, 1, "", why or "cannot read"))
        return []
    return build(str(path), data, env, default_project_id, errors, roots)


def load_text(
    text: str | bytes,
    *,
    name: str = "<text>",
    env: Mapping[str, str] | None = None,
    default_project_id: int | None = None,
) -> tuple[list[DesiredDeployment], list[ManifestError]]:
    """The deployments of one manifest text (as if it were the file `name`), and its errors."""
    data = text.encode() if isinstance(text, str) else text
    errors: list[ManifestError] = []
    if len(data) > MAX_FILE_BYTES:
        errors.append(ManifestError(name, 1, 1, "", "text is over the 1 MiB limit"))
        return [], errors
    found = build(name, data, os.environ if env is None else env, default_project_id, errors)
    return [d for d in found if isinstance(d, DesiredDeployment)], sorted(errors)


@batch
def load_manifests(
    paths: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    default_project_id: int | None = None,
    secrets_from: Sequence[str | os.PathLike[str]] = (),
) -> tuple[DesiredState, list[ManifestError]]:
    """Load and validate every manifest under `paths`.

    Returns the desired state and every error found; callers must not act on the state when the
    list is non-empty (`load_desired` raises instead). `valueFrom.file` reads only from inside
    `paths` and the folders of `secrets_from`.
    """
    env = os.environ if env is None else env
    files, errors = discover(paths)
    roots = SecretRoots.of(paths, secrets_from)
    everything: list[Found] = []
    for path in files:
        everything.extend(_file(path, env, default_project_id, errors, roots))
    first_seen: dict[DeploymentKey | ObjectKey, Found] = {}
    for found in sorted(everything, key=lambda d: d.source):
        other = first_seen.get(found.key)
        if other is None:
            first_seen[found.key] = found
            continue
        what = f"deployment {found.key}" if isinstance(found, DesiredDeployment) else found.key
        errors.append(
            ManifestError(
                found.source.file,
                found.source.line,
                found.source.column,
                "metadata.name",
                f"{what} is defined twice: here and at {other.source}",
            )
        )
    deployments = [d for d in first_seen.values() if isinstance(d, DesiredDeployment)]
    objects = [o for o in first_seen.values() if isinstance(o, DesiredObject)]
    state = DesiredState(
        tuple(sorted(deployments, key=lambda d: d.key)),
        len(files),
        tuple(sorted(objects, key=lambda o: o.key)),
    )
    return state, sorted(set(errors))


def load_desired(
    paths: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    default_project_id: int | None = None,
    secrets_from: Sequence[str | os.PathLike[str]] = (),
) -> DesiredState:
    """Like `load_manifests`, but raise `ManifestErrors` if anything is wrong."""
    state, errors = load_manifests(
        paths, env=env, default_project_id=default_project_id, secrets_from=secrets_from
    )
    if errors:
        raise ManifestErrors(errors)
    return state


__all__ = [
    "NAME_RE",
    "SUFFIXES",
    "ManifestError",
    "ManifestErrors",
    "discover",
    "format_path",
    "load_desired",
    "load_manifests",
    "load_text",
]
