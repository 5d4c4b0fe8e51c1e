"""Loading the object kinds: secret values from files, literal secrets refused, references placed.

The manifest loader hands a document of an object kind to `build_object` with two callbacks (one
validates against a model and reports pydantic's errors in words, one adds a problem at a place),
so this module needs none of the loader's internals.

`valueFrom.file` is read at load time, and only from a folder the user has vouched for: a
manifest root given on the command line, or a folder granted with `--secrets-from DIR`. The path
is resolved (symlinks followed) before the check, so a link cannot lead out of those folders. A
secret file must be a regular file of at most `MAX_SECRET_BYTES`, UTF-8; one trailing newline is
dropped (as `echo` and Kubernetes Secret mounts leave one).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from ..kinds import MANIFEST_MODELS, DesiredObject, Kind, ObjectKey, Reference, references_of
from ..model import Location, SpecPath
from ..spec import DeploymentSpec
from ..yamlplaces import Document, Mark

MAX_SECRET_BYTES = 64 * 1024
VALUE_FROM = "valueFrom"
UNAVAILABLE = "(unavailable)"

Validate = Callable[[type[BaseModel], frozenset[SpecPath]], BaseModel | None]
AddProblem = Callable[[Mark, SpecPath, str], None]


@dataclass(frozen=True)
class SecretRoots:
    """The folders `valueFrom.file` may read from (resolved)."""

    folders: tuple[Path, ...] = ()

    @classmethod
    def of(
        cls,
        manifest_paths: Iterable[str | os.PathLike[str]],
        granted: Iterable[str | os.PathLike[str]] = (),
    ) -> SecretRoots:
        folders = []
        for given in manifest_paths:
            path = Path(given)
            folders.append((path if path.is_dir() else path.parent).resolve())
        folders.extend(Path(g).resolve() for g in granted)
        return cls(tuple(dict.fromkeys(folders)))

    def allows(self, path: Path) -> bool:
        return any(path.is_relative_to(folder) for folder in self.folders)


NO_ROOTS = SecretRoots()


def _read_secret(path: Path) -> tuple[str | None, str]:
    """The file's text, or why not."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return None, "is not a regular file"
        if info.st_size > MAX_SECRET_BYTES:
            return None, f"is over the {MAX_SECRET_BYTES // 1024} KiB limit of a secret file"
        data = path.read_bytes()[: MAX_SECRET_BYTES + 1]
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        return None, "is empty"
    return text, ""


def _value_from(
    doc: Document, spec: dict[str, Any], prefix: SpecPath, rel: SpecPath, ctx: _Load
) -> None:
    """Replace `{valueFrom: {file: F}}` at `rel` inside `spec` by the file's text."""
    parent: Any = spec
    for part in rel[:-1]:
        if not isinstance(parent, dict):
            return
        parent = parent.get(part)
    if not isinstance(parent, dict):
        return
    value = parent.get(rel[-1])
    if not isinstance(value, dict) or VALUE_FROM not in value:
        return
    where = (*prefix, "spec", *rel)
    ref = value.get(VALUE_FROM)
    extra = sorted(set(value) - {VALUE_FROM})
    if extra or not isinstance(ref, dict) or set(ref) != {"file"} or not ref.get("file"):
        ctx.add(doc.mark_of(where), where, "expected {valueFrom: {file: PATH}}")
        _unavailable(doc, parent, rel, where)
        return
    name = ref["file"]
    if not isinstance(name, str):
        ctx.add(doc.mark_of((*where, VALUE_FROM, "file")), where, "a file path must be a string")
        _unavailable(doc, parent, rel, where)
        return
    target = (Path(ctx.file).parent / name).resolve()
    mark = doc.mark_of((*where, VALUE_FROM, "file"))
    if not ctx.roots.allows(target):
        ctx.add(
            mark,
            where,
            f"valueFrom.file {name!r} is outside the manifest root; "
            "grant its folder with --secrets-from DIR",
        )
        _unavailable(doc, parent, rel, where)
        return
    text, why = _read_secret(target)
    if text is None:
        ctx.add(mark, where, f"valueFrom.file {name!r} {why}")
        _unavailable(doc, parent, rel, where)
        return
    parent[rel[-1]] = text
    doc.sensitive.add(where)


def _unavailable(doc: Document, parent: dict[str, Any], rel: SpecPath, where: SpecPath) -> None:
    """Stand in for a value that could not be read (its error is already told), so it is not
    reported a second time as empty or literal."""
    parent[str(rel[-1])] = UNAVAILABLE
    doc.sensitive.add(where)


@dataclass(frozen=True)
class _Load:
    file: str
    roots: SecretRoots
    add: AddProblem


def build_object(
    doc: Document,
    body: dict[str, Any],
    prefix: SpecPath,
    kind: Kind,
    *,
    file: str,
    default_project_id: int | None,
    roots: SecretRoots,
    validate: Validate,
    add: AddProblem,
) -> DesiredObject | None:
    """One credential, secret or API key document found at `prefix` of `doc`."""
    ctx = _Load(file, roots, add)
    spec = body.get("spec")
    if isinstance(spec, dict):
        for rel in kind.write_only:
            _value_from(doc, spec, prefix, rel, ctx)
    write_only = {("spec", *rel) for rel in kind.write_only}
    manifest = validate(MANIFEST_MODELS[kind], frozenset(write_only))
    if manifest is None:
        return None
    problems = False
    for path in sorted(write_only, key=str):
        where = (*prefix, *path)
        if where not in doc.sensitive:
            add(
                doc.mark_of(where),
                where,
                'a literal secret is not allowed here: write "${VAR}" or '
                "{valueFrom: {file: PATH}} so the value stays out of git",
            )
            problems = True
    metadata = getattr(manifest, "metadata")  # noqa: B009 (the union's common field)
    project_id = metadata.project_id if metadata.project_id is not None else default_project_id
    if project_id is None:
        add(
            doc.mark_of((*prefix, "metadata"), key=True),
            (*prefix, "metadata", "project_id"),
            f"{kind.noun} {metadata.name!r} names no project_id, "
            "and GCORE_CLOUD_PROJECT_ID is not set",
        )
        return None
    if problems:
        return None
    in_spec = (*prefix, "spec")
    sensitive = {p[len(in_spec) :] for p in doc.sensitive if p[: len(in_spec)] == in_spec}
    sensitive |= set(kind.write_only)
    start = doc.mark_of(prefix) if prefix else doc.start
    return DesiredObject(
        key=ObjectKey(kind, project_id, metadata.name),
        spec=getattr(manifest, "spec"),  # noqa: B009
        source=Location(file, start.line, start.column),
        labels=MappingProxyType(dict(metadata.labels)),
        annotations=MappingProxyType(dict(metadata.annotations)),
        sensitive_paths=frozenset(sensitive),
    )


def placed_references(
    doc: Document, prefix: SpecPath, spec: DeploymentSpec, project_id: int, file: str
) -> tuple[Reference, ...]:
    """The objects a deployment names, each with the file place of its name."""
    found = []
    for kind, name, path in references_of(spec):
        mark = doc.mark_of((*prefix, "spec", *path))
        where = Location(file, mark.line, mark.column)
        found.append(Reference(ObjectKey(kind, project_id, name), path, where))
    return tuple(found)


@dataclass(frozen=True, order=True)
class Dangling:
    """A reference to an object no manifest declares (a warning offline, an error at plan)."""

    location: Location
    path: str  # `spec.credentials_name`, ...
    target: ObjectKey
    deployment: str
    live_checked: bool = False  # offline, only the manifests were searched

    def __str__(self) -> str:
        where = f"{self.location.file}:{self.location.line}:{self.location.column}"
        what = "is neither declared nor live" if self.live_checked else "is not declared"
        return f"{where}: {self.path}: {self.target} {what}"


def dangling(
    deployments: Sequence[Any],
    objects: Sequence[DesiredObject],
    live: Iterable[ObjectKey] | None = None,
) -> list[Dangling]:
    """References that name neither a declared object nor one in `live` (when given)."""
    known = {o.key for o in objects} | set(live or ())
    found = []
    for deployment in deployments:
        for ref in deployment.references:
            if ref.target not in known:
                path = "spec." + _dotted(ref.path)
                found.append(
                    Dangling(ref.location, path, ref.target, str(deployment.key), live is not None)
                )
    return sorted(found)


def _dotted(path: SpecPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
