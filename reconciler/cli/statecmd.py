"""`reconciler state …`: commands on the inventory itself.

This module builds the `state` command group; each family of subcommands adds itself from its
own module (`export`/`import` below; `list`/`show`/`rm` may join the same group).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import inventory
from .common import Subparsers


def add_state(sub: Subparsers) -> Subparsers:
    p = sub.add_parser(
        "state",
        help="work on the inventory (the state store)",
        description="Commands on the inventory of owned deployments.",
    )
    group = p.add_subparsers(dest="state_command", metavar="COMMAND", required=True)
    add_transfer(group)
    inventory.add_inventory(group)
    return group


def _add_state_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state",
        metavar="PATH|URL",
        help="state file or postgresql:// URL (default: $RECONCILER_STATE, "
        "else .reconciler/state.db)",
    )


def add_transfer(group: Subparsers) -> None:
    export = group.add_parser(
        "export",
        help="write the inventory as JSON (secrets stay hashed)",
        description="Write every record and the unfinished journal as one JSON document: a "
        "backup, or the way to move an inventory (for example from SQLite to PostgreSQL). "
        "Sensitive values stay hashed; the hash key is not included.",
    )
    _add_state_flag(export)
    export.add_argument("--out", metavar="FILE", help="write to FILE (mode 0600), not stdout")
    export.set_defaults(func=_cmd_export)

    load = group.add_parser(
        "import",
        help="load an exported inventory into an empty store",
        description="Load a document written by `state export` into an empty store. The "
        "store needs the source's hash key material (the same RECONCILER_STATE_KEY, or "
        "RECONCILER_STATE_KEY_FILE naming a copy of the source's key file).",
    )
    load.add_argument("file", metavar="FILE", help="the exported JSON ('-' for stdin)")
    _add_state_flag(load)
    load.set_defaults(func=_cmd_import)


def _cmd_export(args: argparse.Namespace) -> int:
    import json
    import os

    from ..state import open_backend
    from ..statetransfer import export_state

    store = open_backend(args.state)
    try:
        document = export_state(store)
    finally:
        store.close()
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if not args.out:
        sys.stdout.write(text)
        return 0
    target = Path(args.out)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(target)
    count = len(document["records"])
    print(f"exported {count} record{'s' if count != 1 else ''} to {target}", file=sys.stderr)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from ..errors import ReconcilerError
    from ..state import open_backend
    from ..statetransfer import import_state, parse_document

    where = "<stdin>" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ReconcilerError(f"{where}: cannot read ({reason})") from None
    document = parse_document(text, where)
    store = open_backend(args.state)
    try:
        done = import_state(store, document)
        print(
            f"imported {done.records} record{'s' if done.records != 1 else ''} and "
            f"{done.journal} unfinished journal entr{'ies' if done.journal != 1 else 'y'} "
            f"into {store}"
            + (f" (with {done.objects} credentials, secrets and API keys)" if done.objects else "")
        )
    finally:
        store.close()
    return 0
