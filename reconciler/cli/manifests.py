"""`reconciler validate` and `reconciler schema`."""

from __future__ import annotations

import argparse
import json
import sys

from .common import Subparsers, add_allow_empty, require_manifests


def add_validate(sub: Subparsers) -> None:
    p = sub.add_parser(
        "validate",
        help="validate manifests and print every error",
        description="Validate manifests (files, or directories searched recursively) and print "
        "every error as FILE:LINE:COL: PATH: MESSAGE. Exit 0 when all are valid, 1 otherwise.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
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
    for error in errors:
        print(error)
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
