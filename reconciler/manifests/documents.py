"""Documents to deployments: one file's text -> YAML documents -> validated deployments.

Every problem is appended to the caller's list with its place; a document with any problem
yields no deployment.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError

from ..kinds import OBJECT_KINDS, DesiredObject, Kind
from ..model import DeploymentKey, DesiredDeployment, Location, SpecPath
from ..spec import API_VERSION, KIND, Manifest
from ..yamlplaces import Document, Mark, YamlProblem, decode
from ..yamlsource import load_documents
from .objects import NO_ROOTS, SecretRoots, build_object, placed_references
from .rules import rule_errors
from .wording import ManifestError, describe, format_path, message

LIST_KIND = "List"
KINDS = [KIND, *(k.value for k in OBJECT_KINDS)]
Found = DesiredDeployment | DesiredObject


@dataclass
class _Context:
    file: str
    errors: list[ManifestError]
    env: Mapping[str, str]
    default_project_id: int | None
    roots: SecretRoots = NO_ROOTS

    def add(self, mark: Mark, path: SpecPath, message: str) -> None:
        self.errors.append(
            ManifestError(self.file, mark.line, mark.column, format_path(path), message)
        )


def _suggest(value: Any, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _validate(
    ctx: _Context,
    doc: Document,
    body: Any,
    prefix: SpecPath,
    model: type[BaseModel],
    also_sensitive: frozenset[SpecPath] = frozenset(),
) -> Any:
    """`body` validated as `model`, or None with every problem added at its place."""
    sensitive_in_doc = {p[len(prefix) :] for p in doc.sensitive if p[: len(prefix)] == prefix}
    sensitive_in_doc |= also_sensitive
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        start = len(ctx.errors)
        for rule_path, text in rule_errors(model, body):
            ctx.add(doc.mark_of(prefix + rule_path, key=True), prefix + rule_path, text)
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
            ctx.add(mark, path, message(err, sensitive, model))
        ctx.errors[start:] = list(dict.fromkeys(ctx.errors[start:]))  # a rule both reported
        return None


def _manifest(
    ctx: _Context, doc: Document, body: Any, prefix: SpecPath
) -> DesiredDeployment | None:
    """Validate one InferenceDeployment mapping found at `prefix` of `doc`."""
    manifest: Manifest | None = _validate(ctx, doc, body, prefix, Manifest)
    if manifest is None:
        return None
    sensitive_in_doc = {p[len(prefix) :] for p in doc.sensitive if p[: len(prefix)] == prefix}
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
        labels=_read_only(metadata.labels),
        annotations=_read_only(metadata.annotations),
        sensitive_paths=frozenset(spec_paths),
        references=placed_references(doc, prefix, manifest.spec, project_id, ctx.file),
    )


_NONE: Mapping[str, str] = MappingProxyType({})


def _read_only(mapping: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy; every empty one is the same (most manifests set no annotations)."""
    return MappingProxyType(dict(mapping)) if mapping else _NONE


def _one(ctx: _Context, doc: Document, body: dict[str, Any], prefix: SpecPath) -> Found | None:
    """One manifest of any kind (the kind is known to be valid)."""
    kind = Kind(body["kind"])
    if kind is Kind.DEPLOYMENT:
        return _manifest(ctx, doc, body, prefix)
    return build_object(
        doc,
        body,
        prefix,
        kind,
        file=ctx.file,
        default_project_id=ctx.default_project_id,
        roots=ctx.roots,
        validate=lambda model, secret: _validate(ctx, doc, body, prefix, model, secret),
        add=ctx.add,
    )


def _document(ctx: _Context, doc: Document) -> list[Found]:
    body = doc.value
    if not isinstance(body, dict):
        ctx.add(doc.start, (), f"a manifest must be a mapping, got {describe(body, False)}")
        return []
    version = body.get("apiVersion")
    kind = body.get("kind")
    problems = False
    if version != API_VERSION:
        what = "missing" if version is None else f"unsupported: {describe(version, False)}"
        ctx.add(doc.mark_of(("apiVersion",)), ("apiVersion",), f"{what}; expected {API_VERSION}")
        problems = True
    if kind not in (*KINDS, LIST_KIND):
        what = "missing" if kind is None else f"unknown kind {describe(kind, False)}"
        ctx.add(
            doc.mark_of(("kind",)),
            ("kind",),
            f"{what}; expected one of {', '.join(KINDS)} or {LIST_KIND}"
            f"{_suggest(kind, [*KINDS, LIST_KIND])}",
        )
        problems = True
    if problems:
        return []
    if kind != LIST_KIND:
        single = _one(ctx, doc, body, ())
        return [single] if single else []
    extra = sorted(set(body) - {"apiVersion", "kind", "items"})
    for key in extra:
        ctx.add(doc.mark_of((key,), key=True), (key,), "unknown field; a List has only items")
    items = body.get("items")
    if not isinstance(items, list):
        ctx.add(
            doc.mark_of(("items",)), ("items",), f"expected a list, got {describe(items, False)}"
        )
        return []
    found_all: list[Found] = []
    for i, item in enumerate(items):
        path: SpecPath = ("items", i)
        if not isinstance(item, dict):
            ctx.add(
                doc.mark_of(path),
                path,
                f"expected a manifest mapping, got {describe(item, False)}",
            )
            continue
        if item.get("kind") == LIST_KIND:
            ctx.add(doc.mark_of((*path, "kind")), (*path, "kind"), "a List may not hold a List")
            continue
        if item.get("kind") in KINDS[1:]:
            found = _one(ctx, doc, item, path)
        else:
            found = _manifest(ctx, doc, item, path)
        if found:
            found_all.append(found)
    return found_all


def build(
    name: str,
    data: bytes,
    env: Mapping[str, str],
    default_project_id: int | None,
    errors: list[ManifestError],
    roots: SecretRoots = NO_ROOTS,
) -> list[Found]:
    ctx = _Context(name, errors, env, default_project_id, roots)
    text, problem = decode(data)
    if text is None:
        assert problem is not None
        ctx.add(problem.mark, problem.path, problem.message)
        return []
    problems: list[YamlProblem] = []
    documents = load_documents(text, env, problems)
    for p in problems:
        ctx.add(p.mark, p.path, p.message)
    if any(not p.of_value for p in problems):
        return []
    before = len(errors)
    found: list[Found] = []
    for doc in documents:
        found.extend(_document(ctx, doc))
    if problems:
        # an unset ${VAR} hides nothing else, yet its own value ("" in its place) is not judged
        said = {format_path(p.path) for p in problems}
        errors[before:] = [e for e in errors[before:] if e.path not in said]
        return []
    return found
