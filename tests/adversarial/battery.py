"""The hostile-input battery: every case through `validate` and `plan --simulate`, classified.

A case is a manifest file whose first line says what must happen (`# expect: LINE: FRAGMENT`,
or `# expect: ok`), or a small file tree built at run time (FIFOs, symlinks, unreadable
folders, hostile file names). Each run is in process, under a 10 s alarm, with every HTTP
request counted. A run *held* when a refused case exits 1 with a `FILE:LINE:COL:` line at the
expected line holding the fragment, no traceback and no HTTP request, and an accepted case
exits 0; and, either way, no output carries a raw control character, a line a CI runner would
take as a command (`::`), or a canary secret.

`python -m tests.adversarial.battery` prints the counts (held / tracebacks / hangs / wrongly
accepted / wrongly refused / misplaced / unsafe output) for the checkout it runs in. To measure
another checkout (an older revision), copy this `tests/` folder into it and run the module from
there: `python -m` puts the working folder first on the path, ahead of PYTHONPATH, so pointing
PYTHONPATH at the other checkout would measure this one again.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import signal
import stat
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..canary import CANARIES, assert_no_canary

HERE = Path(__file__).parent
CASES = HERE / "cases"
OLD_CORPUS = HERE.parent / "data" / "invalid"
EXPECT = re.compile(r"# expect: (?:(\d+): (.*)|ok)\s*$")
LIMIT = 10.0
CANARY = CANARIES["interpolated"]
ENV = {
    "ADV_SECRET": CANARY,
    "ADV_NAME": "adv-svc-two",
    "ADV_NUM": "8080",
    "ADV_TAG": "1.27",
    "ADV_CTL": "x\x1by",
}
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Path]  # makes the case under a folder, returns the path to load
    line: int | None  # None: the case must be accepted
    fragment: str = ""


@dataclass
class Run:
    code: int | None
    out: str
    err: str
    crash: str | None
    hung: bool
    seconds: float
    requests: int


class _Alarm(BaseException):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Alarm


@contextlib.contextmanager
def _counting_requests() -> Iterator[list[int]]:
    count = [0]
    original = httpx.AsyncClient.send

    async def send(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> httpx.Response:
        count[0] += 1
        return await original(self, *args, **kwargs)

    httpx.AsyncClient.send = send  # type: ignore[method-assign]
    try:
        yield count
    finally:
        httpx.AsyncClient.send = original  # type: ignore[method-assign]


def run_cli(argv: list[str], limit: float = LIMIT) -> Run:
    """`reconciler ARGV` in this process, its output captured, under an alarm."""
    from reconciler.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    crash = None
    hung = False
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    started = time.monotonic()
    with _counting_requests() as requests:
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                signal.setitimer(signal.ITIMER_REAL, limit)
                try:
                    code = main(argv)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except _Alarm:
            hung = True
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:
            crash = traceback.format_exc()
        finally:
            signal.signal(signal.SIGALRM, previous)
    return Run(code, out.getvalue(), err.getvalue(), crash, hung, time.monotonic() - started,
               requests[0])  # fmt: skip


def verdict(case: Case, path: Path, run: Run, *, plan: bool) -> tuple[str, str]:
    """(outcome, detail): `held`, or what went wrong."""
    if run.hung:
        return "hang", f"no answer within {LIMIT:g}s"
    if run.crash:
        return "traceback", run.crash.strip().splitlines()[-1]
    text = run.out + run.err
    if "Traceback (most recent call last)" in text:
        return "traceback", "a traceback was printed"
    try:
        assert_no_canary({"output": text})
    except AssertionError as leak:
        return "leaked", str(leak)
    if CONTROL.search(text) or any(line.startswith("::") for line in text.splitlines()):
        return "unsafe output", repr(text[:300])
    if case.line is None:
        if run.code != 0:
            return "wrongly refused", text.strip()[:300]
        return "held", ""
    if run.code == 0:
        return "wrongly accepted", f"exit 0: {text.strip()[:200]}"
    if run.requests:
        return "api request", f"{run.requests} HTTP request(s) for a refused manifest"
    located = re.compile(rf"^(.*):{case.line}:(\d+): (.*)$", re.MULTILINE)
    for match in located.finditer(text):
        if case.fragment.lower() in match.group(3).lower():
            return "held", ""
    return "misplaced", f"wanted line {case.line} with {case.fragment!r}; got {text.strip()[:300]}"


# -- the corpus --------------------------------------------------------------------------------


def _copy(source: Path) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        target = folder / source.name
        target.write_bytes(source.read_bytes())
        return target

    return build


def file_cases() -> list[Case]:
    found = []
    for source in sorted(CASES.glob("*.yaml")) + sorted(OLD_CORPUS.glob("*.yaml")):
        header = source.read_bytes().split(b"\n", 1)[0].decode(errors="replace").lstrip("\ufeff")
        match = EXPECT.match(header)
        assert match, f"{source} lacks an '# expect:' header"
        line = int(match.group(1)) if match.group(1) else None
        prefix = "old-" if source.parent == OLD_CORPUS else ""
        found.append(
            Case(prefix + source.stem, _copy(source), line, (match.group(2) or "").strip())
        )
    return found


VALID = """\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {name: ok-svc, project_id: 1}
spec:
  image: nginx:latest
  flavor_name: inference-4vcpu-16gib
  listening_port: 80
  containers: [{region_id: 1, scale: {min: 1, max: 1}}]
"""


def _tree(make: Callable[[Path], Path | None]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        root = folder / "tree"
        root.mkdir()
        (root / "ok.yaml").write_text(VALID)
        made = make(root)
        return made if made is not None else root

    return build


def _fifo(root: Path) -> None:
    os.mkfifo(root / "pipe.yaml")


def _fifo_link(root: Path) -> None:
    os.mkfifo(root / "pipe")
    (root / "pipe.yaml").symlink_to(root / "pipe")


def _fifo_given(root: Path) -> Path:
    os.mkfifo(root / "pipe.yaml")
    return root / "pipe.yaml"


def _loop(root: Path) -> None:
    (root / "a.yaml").symlink_to(root / "b.yaml")
    (root / "b.yaml").symlink_to(root / "a.yaml")


def _dir_loop(root: Path) -> None:
    (root / "d1").symlink_to(root / "d2")
    (root / "d2").symlink_to(root / "d1")


def _device(root: Path) -> None:
    (root / "zero.yaml").symlink_to("/dev/zero")


def _unreadable_dir(root: Path) -> None:
    sub = root / "team"
    sub.mkdir()
    (sub / "x.yaml").write_text(VALID.replace("ok-svc", "team-svc"))
    sub.chmod(0)


def _unreadable_file(root: Path) -> None:
    (root / "locked.yaml").write_text(VALID.replace("ok-svc", "locked-svc"))
    (root / "locked.yaml").chmod(0)


def _named(name: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        (root / name).write_text("kind: [\n")

    return make


def _dir_named_yaml(root: Path) -> None:
    (root / "dir.yaml").mkdir()
    (root / "dir.yaml" / "inner.yaml").write_text("kind: [\n")


def tree_cases() -> list[Case]:
    cases = [
        Case("fs-fifo", _tree(_fifo), 1, "not a regular file"),
        Case("fs-symlink-to-fifo", _tree(_fifo_link), 1, "not a regular file"),
        Case("fs-fifo-given", _tree(_fifo_given), 1, "not a regular file"),
        Case("fs-symlink-loop", _tree(_loop), 1, "symlink loop"),
        Case("fs-folder-symlink-loop", _tree(_dir_loop), None),
        Case("fs-device", _tree(_device), 1, ""),
        Case("fs-name-esc", _tree(_named("x\x1b[2J.yaml")), 2, "YAML syntax error"),
        Case("fs-name-newline-command", _tree(_named("x\n::error file=a::b.yaml")), 2, "YAML"),
        Case("fs-name-command", _tree(_named("::warning::x.yaml")), 2, "YAML syntax error"),
        Case("fs-dir-named-yaml", _tree(_dir_named_yaml), 2, "YAML syntax error"),
    ]
    if os.geteuid() != 0:  # root reads anything; the unreadable cases run as nobody in tests
        cases += [
            Case("fs-unreadable-folder", _tree(_unreadable_dir), 1, "cannot read folder"),
            Case("fs-unreadable-file", _tree(_unreadable_file), 1, "cannot read"),
        ]
    return cases


def all_cases() -> list[Case]:
    return file_cases() + tree_cases()


def run_case(case: Case, folder: Path, command: str) -> tuple[str, str, Run]:
    folder.mkdir(parents=True, exist_ok=True)
    path = case.build(folder)
    argv = ["validate", str(path)]
    if command == "plan":
        argv = ["plan", str(path), "--simulate", "--state", str(folder / "state" / "state.db")]
        # the corpus is about reading manifests; preflight refuses what the simulated cloud
        # lacks (ok-region-big's region) and has its own tests (tests/test_preflight.py); a
        # checkout from before preflight (measured for the counts before) has no such flag
        if importlib.util.find_spec("reconciler.preflight") is not None:
            argv.append("--no-preflight")
    run = run_cli(argv)
    outcome, detail = verdict(case, path, run, plan=command == "plan")
    return outcome, detail, run


@contextlib.contextmanager
def environment() -> Iterator[None]:
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("GCORE_", "RECONCILER_")):
            del os.environ[key]
    os.environ.update(ENV)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _unlock(folder: Path) -> None:
    for dirpath, dirnames, _ in os.walk(folder):
        for name in dirnames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(stat.S_IRWXU)


def main() -> int:
    totals: dict[str, Counter[str]] = {"validate": Counter(), "plan": Counter()}
    cases = all_cases()
    with environment(), tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(cases):
            for command in ("validate", "plan"):
                outcome, detail, _ = run_case(case, Path(tmp, str(i), command), command)
                totals[command][outcome] += 1
                if outcome != "held" and "-v" in sys.argv:
                    print(f"{command:8} {case.name}: {outcome}: {detail}")
        _unlock(Path(tmp))
    print(f"{len(cases)} cases")
    for command, counts in totals.items():
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(f"{command:8}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
