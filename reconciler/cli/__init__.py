"""The `reconciler` command line.

Every command returns an exit code; every error we expect (`ReconcilerError`) is printed as one
line on stderr (manifest errors: one line each), never as a traceback. One module per family of
commands; this one builds the parser and runs the chosen command.

Building the parser imports nothing heavy: each command imports what it needs (pydantic, httpx,
rich, starlette, uvicorn, watchdog, prometheus-client, the simulator) inside its function, so
`reconciler --version` starts in a few tens of milliseconds and `validate` never loads the HTTP
stack. `tests/test_cli_imports.py` guards this.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import ReconcilerError
from . import (
    applying,
    completion,
    destroy,
    diffcmd,
    live,
    manifests,
    objects,
    planning,
    rollback,
    service,
    statecmd,
)

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="Declarative GitOps reconciler for Gcore Everywhere Inference deployments.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    manifests.add_validate(sub)
    planning.add_plan(sub)
    applying.add_apply(sub)
    planning.add_status(sub)
    service.add_serve(sub)
    manifests.add_schema(sub)
    service.add_simulator(sub)
    objects.add_logs(sub)
    objects.add_rotate_key(sub)
    statecmd.add_state(sub)
    diffcmd.add_diff(sub)
    destroy.add_destroy(sub)
    live.add_get(sub)
    live.add_import(sub)
    live.add_describe(sub)
    rollback.add_history(sub)
    rollback.add_rollback(sub)
    completion.add_completion(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 1
    try:
        return func(args)
    except ReconcilerError as exc:
        from ..manifests import ManifestErrors  # loaded already when it is one

        if isinstance(exc, ManifestErrors):
            for error in exc.errors:
                print(error, file=sys.stderr)
            count = len(exc.errors)
            print(
                f"{count} manifest error{'s' if count != 1 else ''}; nothing done", file=sys.stderr
            )
            return 1
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `reconciler ... | head`: the reader left; that is not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
