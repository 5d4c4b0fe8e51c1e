"""Manifests to desired state: find the files, read the envelopes, validate every field.

All problems of all files are collected and reported together, sorted by file and line, each as
`FILE:LINE:COL: PATH: MESSAGE`; any problem means no desired state at all (nothing is applied
from a half-valid set). Messages are for people: pydantic's error types are translated, unknown
fields suggest the closest known name, and no value from a sensitive path is ever echoed.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .errors import ReconcilerError
from .model import DeploymentKey, DesiredDeployment, DesiredState, Location, SpecPath
from .spec import API_VERSION, KIND, NAME_RE, Manifest
from .yamlsource import MAX_FILE_BYTES, Document, Mark, YamlProblem, decode, load_documents

SUFFIXES = (".yaml", ".yml")
LIST_KIND = "List"


@dataclass(frozen=True, order=True)
class ManifestError:
    """One problem at one place."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ManifestErrors(ReconcilerError):
    """The manifest set is invalid; `errors` holds every problem, sorted."""

    def __init__(self, errors: Sequence[ManifestError]) -> None:
        self.errors = sorted(errors)
        count = len(self.errors)
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{self.errors[0]}{more}")


def format_path(path: Iterable[str | int]) -> str:
    """`("spec", "containers", 0, "scale")` -> `spec.containers[0].scale`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# -- finding files -----------------------------------------------------------------------------


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


# -- pydantic errors, in words -----------------------------------------------------------------


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return (
        "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else "null"
    )


def _describe(value: Any, sensitive: bool) -> str:
    if sensitive:
        return f"{_kind_of(value)} (value hidden: sensitive)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` -> `X`."""
    while True:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin in (typing.Union, types.UnionType):
            non_none = [a for a in args if a is not type(None)]
            if len(non_none) != 1:
                return None
            annotation = non_none[0]
        elif origin is typing.Annotated:
            annotation = args[0]
        else:
            return annotation


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that holds the fields at `loc` (for suggesting field names)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int) or typing.get_origin(current) is dict:
            args = typing.get_args(current)
            current = args[-1] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) or next(
                (f for f in current.model_fields.values() if f.alias == part), None
            )
            current = field.annotation if field else None
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _message(err: ErrorDetails, sensitive: bool, model: type[BaseModel]) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    loc = err["loc"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        text = "unknown field"
        if parent is not None:
            close = difflib.get_close_matches(str(loc[-1]), _field_names(parent), n=1, cutoff=0.6)
            if close:
                text += f"; did you mean `{close[0]}`?"
            else:
                text += f"; expected one of: {', '.join(sorted(_field_names(parent)))}"
        return text
    shown = _describe(value, sensitive)
    if kind == "int_type":
        return f"expected an integer, got {shown}"
    if kind == "string_type":
        hint = ""
        if isinstance(value, bool | int | float):
            literal = str(value).lower() if isinstance(value, bool) else str(value)
            hint = "; quote it" if sensitive else f'; quote it: "{literal}"'
        return f"expected a string, got {shown}{hint}"
    if kind == "bool_type":
        return f"expected true or false, got {shown}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping, got {shown}"
    if kind == "list_type":
        return f"expected a list, got {shown}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, got {shown}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}, got {shown}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        if isinstance(value, str):
            return "must not be empty"
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return (
            "must be 4-30 characters of lowercase letters, digits and '-', "
            f"starting with a letter; got {shown}"
        )
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {shown}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])


# -- documents to deployments ------------------------------------------------------------------


@dataclass
class _Context:
    file: str
    errors: list[ManifestError]
    env: Mapping[str, str]
    default_project_id: int | None

    def add(self, mark: Mark, path: SpecPath, message: str) -> None:
        self.errors.append(
            ManifestError(self.file, mark.line, mark.column, format_path(path), message)
        )


def _suggest(value: Any, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _manifest(
    ctx: _Context, doc: Document, body: Any, prefix: SpecPath
) -> DesiredDeployment | None:
    """Validate one InferenceDeployment mapping found at `prefix` of `doc`."""
    sensitive_in_doc = {p[len(prefix) :] for p in doc.sensitive if p[: len(prefix)] == prefix}
    try:
        manifest = Manifest.model_validate(body)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            key_error = loc and loc[-1] == "[key]"
            if key_error:
                loc = loc[:-1]
            path = prefix + loc
            # unknown fields, bad keys, and rules about a whole mapping or list point at the key
            at_key = (
                err["type"] == "extra_forbidden"
                or bool(key_error)
                or (err["type"] == "value_error" and isinstance(err.get("input"), dict | list))
            )
            if err["type"] == "missing":
                parent = path[:-1]
                mark = doc.mark_of(parent, key=True) if parent else doc.start
            else:
                mark = doc.mark_of(path, key=at_key)
            sensitive = loc[:2] == ("spec", "envs") or any(
                p[: len(loc)] == loc for p in sensitive_in_doc
            )
            ctx.add(mark, path, _message(err, sensitive, Manifest))
        return None
    metadata = manifest.metadata
    project_id = metadata.project_id if metadata.project_id is not None else ctx.default_project_id
    if project_id is None:
        ctx.add(
            doc.mark_of((*prefix, "metadata"), key=True),
            (*prefix, "metadata", "project_id"),
            f"deployment {metadata.name!r} names no project_id, "
            "and GCORE_CLOUD_PROJECT_ID is not set",
        )
        return None
    spec_paths = {p[1:] for p in sensitive_in_doc if p[:1] == ("spec",)}
    spec_paths |= {("envs", k) for k in manifest.spec.envs or {}}
    start = doc.mark_of(prefix) if prefix else doc.start
    return DesiredDeployment(
        key=DeploymentKey(project_id, metadata.name),
        spec=manifest.spec,
        source=Location(ctx.file, start.line, start.column),
        labels=MappingProxyType(dict(metadata.labels)),
        annotations=MappingProxyType(dict(metadata.annotations)),
        sensitive_paths=frozenset(spec_paths),
    )


def _document(ctx: _Context, doc: Document) -> list[DesiredDeployment]:
    body = doc.value
    if not isinstance(body, dict):
        ctx.add(doc.start, (), f"a manifest must be a mapping, got {_describe(body, False)}")
        return []
    version = body.get("apiVersion")
    kind = body.get("kind")
    problems = False
    if version != API_VERSION:
        what = "missing" if version is None else f"unsupported: {_describe(version, False)}"
        ctx.add(doc.mark_of(("apiVersion",)), ("apiVersion",), f"{what}; expected {API_VERSION}")
        problems = True
    if kind not in (KIND, LIST_KIND):
        what = "missing" if kind is None else f"unknown kind {_describe(kind, False)}"
        ctx.add(
            doc.mark_of(("kind",)),
            ("kind",),
            f"{what}; expected {KIND} or {LIST_KIND}{_suggest(kind, [KIND, LIST_KIND])}",
        )
        problems = True
    if problems:
        return []
    if kind == KIND:
        found = _manifest(ctx, doc, body, ())
        return [found] if found else []
    extra = sorted(set(body) - {"apiVersion", "kind", "items"})
    for key in extra:
        ctx.add(doc.mark_of((key,), key=True), (key,), "unknown field; a List has only items")
    items = body.get("items")
    if not isinstance(items, list):
        ctx.add(
            doc.mark_of(("items",)), ("items",), f"expected a list, got {_describe(items, False)}"
        )
        return []
    found_all = []
    for i, item in enumerate(items):
        path: SpecPath = ("items", i)
        if not isinstance(item, dict):
            ctx.add(
                doc.mark_of(path),
                path,
                f"expected a manifest mapping, got {_describe(item, False)}",
            )
            continue
        if item.get("kind") == LIST_KIND:
            ctx.add(doc.mark_of((*path, "kind")), (*path, "kind"), "a List may not hold a List")
            continue
        found = _manifest(ctx, doc, item, path)
        if found:
            found_all.append(found)
    return found_all


def _read(path: Path) -> tuple[bytes | None, str | None]:
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


def _file(
    path: Path,
    env: Mapping[str, str],
    default_project_id: int | None,
    errors: list[ManifestError],
) -> list[DesiredDeployment]:
    data, why = _read(path)
    if data is None:
        errors.append(ManifestError(str(path), 1, 1, "", why or "cannot read"))
        return []
    return _text(str(path), data, env, default_project_id, errors)


def _text(
    name: str,
    data: bytes,
    env: Mapping[str, str],
    default_project_id: int | None,
    errors: list[ManifestError],
) -> list[DesiredDeployment]:
    ctx = _Context(name, errors, env, default_project_id)
    text, problem = decode(data)
    if text is None:
        assert problem is not None
        ctx.add(problem.mark, problem.path, problem.message)
        return []
    problems: list[YamlProblem] = []
    documents = load_documents(text, env, problems)
    for p in problems:
        ctx.add(p.mark, p.path, p.message)
    if problems:
        return []
    found: list[DesiredDeployment] = []
    for doc in documents:
        found.extend(_document(ctx, doc))
    return found


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
    found = _text(name, data, os.environ if env is None else env, default_project_id, errors)
    return found, sorted(errors)


def load_manifests(
    paths: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    default_project_id: int | None = None,
) -> tuple[DesiredState, list[ManifestError]]:
    """Load and validate every manifest under `paths`.

    Returns the desired state and every error found; callers must not act on the state when the
    list is non-empty (`load_desired` raises instead).
    """
    env = os.environ if env is None else env
    files, errors = discover(paths)
    deployments: list[DesiredDeployment] = []
    for path in files:
        deployments.extend(_file(path, env, default_project_id, errors))
    first_seen: dict[DeploymentKey, DesiredDeployment] = {}
    for found in sorted(deployments, key=lambda d: d.source):
        other = first_seen.get(found.key)
        if other is None:
            first_seen[found.key] = found
            continue
        errors.append(
            ManifestError(
                found.source.file,
                found.source.line,
                found.source.column,
                "metadata.name",
                f"deployment {found.key} is defined twice: here and at {other.source}",
            )
        )
    state = DesiredState(tuple(sorted(first_seen.values(), key=lambda d: d.key)), len(files))
    return state, sorted(set(errors))


def load_desired(
    paths: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    default_project_id: int | None = None,
) -> DesiredState:
    """Like `load_manifests`, but raise `ManifestErrors` if anything is wrong."""
    state, errors = load_manifests(paths, env=env, default_project_id=default_project_id)
    if errors:
        raise ManifestErrors(errors)
    return state


__all__ = [
    "NAME_RE",
    "ManifestError",
    "ManifestErrors",
    "discover",
    "format_path",
    "load_desired",
    "load_manifests",
    "load_text",
]
