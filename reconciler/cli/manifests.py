"""`reconciler validate` and `reconciler schema`."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING

from .common import Subparsers, add_allow_empty, require_manifests

if TYPE_CHECKING:
    from ..manifests import ManifestError
    from ..model import DesiredState

_CONTROL_BUT_NEWLINES = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def add_validate(sub: Subparsers) -> None:
    p = sub.add_parser(
        "validate",
        help="validate manifests and print every error",
        description="Validate manifests (files, or directories searched recursively) and print "
        "every error as FILE:LINE:COL: PATH: MESSAGE. Exit 0 when all are valid, 1 otherwise.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text lines FILE:LINE:COL: PATH: MESSAGE, one JSON document, or GitHub Actions "
        "annotations (::error file=...,line=...,col=...::message) (default text)",
    )
    add_secrets_from(p)
    add_allow_empty(p)
    p.set_defaults(func=_cmd_validate)


def add_secrets_from(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--secrets-from",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder valueFrom.file may read secrets from, besides the manifest roots "
        "(repeatable; e.g. a mounted Kubernetes Secret)",
    )


def _cmd_validate(args: argparse.Namespace) -> int:
    from ..config import ApiSettings
    from ..manifests import load_manifests
    from ..manifests.objects import dangling

    settings = ApiSettings.from_env()
    state, errors = load_manifests(
        args.paths, default_project_id=settings.project_id, secrets_from=args.secrets_from
    )
    if args.format == "json":
        return _validate_json(state, errors, args)
    for error in errors:
        print(_github(error) if args.format == "github" else error)
    files = f"{state.files} file{'s' if state.files != 1 else ''}"
    if errors:
        bad = len({e.file for e in errors})
        print(
            f"{len(errors)} error{'s' if len(errors) != 1 else ''} in "
            f"{bad} file{'s' if bad != 1 else ''}; nothing is valid until all are fixed",
            file=sys.stderr,
        )
        return 1
    for warning in dangling(state.deployments, state.objects):
        print(
            f"{warning} (warning: plan and apply refuse it unless it exists live)", file=sys.stderr
        )
    require_manifests(state, args.paths, args.allow_empty)
    count = len(state)
    objects = len(state.objects)
    also = f" and {objects} object{'s' if objects != 1 else ''}" if objects else ""
    print(f"ok: {count} deployment{'s' if count != 1 else ''}{also} in {files}", file=sys.stderr)
    return 0


def _escape_data(text: str) -> str:
    """A workflow command's message, escaped as the Actions runner reads it."""
    from ..textsafe import escape  # control characters but CR/LF (an ESC sequence) as escapes

    text = _CONTROL_BUT_NEWLINES.sub(lambda m: escape(m.group()), text)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(error: ManifestError) -> str:
    """`::error file=F,line=L,col=C,title=PATH::MESSAGE`: an annotation on the pull request."""
    title = f",title={_escape_property(error.path)}" if error.path else ""
    where = f"file={_escape_property(error.file)},line={error.line},col={error.column}{title}"
    return f"::error {where}::{_escape_data(error.message)}"


def _validate_json(
    state: DesiredState, errors: list[ManifestError], args: argparse.Namespace
) -> int:
    """One JSON document on stdout; the exit code says the same as text would."""
    empty = not errors and not len(state) and not state.objects and not args.allow_empty
    report = {
        "valid": not errors and not empty,
        "files": state.files,
        "deployments": len(state),
        "objects": len(state.objects),
        "errors": [
            {
                "file": e.file,
                "line": e.line,
                "column": e.column,
                "path": e.path,
                "message": e.message,
            }
            for e in errors
        ],
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if errors:
        return 1
    require_manifests(state, args.paths, args.allow_empty)
    return 0


def add_schema(sub: Subparsers) -> None:
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of a manifest (for editors)",
        description="Print the JSON Schema of a manifest document. Save it and point "
        "yaml-language-server at it with `# yaml-language-server: $schema=PATH`.",
    )
    p.set_defaults(func=_cmd_schema)


def _cmd_schema(args: argparse.Namespace) -> int:
    from ..spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0
