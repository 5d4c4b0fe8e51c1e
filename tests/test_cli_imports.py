"""The CLI starts fast because each command imports only what it uses.

Timing is measured by `bench/run_all.py` (a shared machine makes timings flaky in a test); what
is asserted here is the cause: which modules a fresh interpreter has loaded after a command ran.
Each check runs in its own subprocess, so nothing this test process imported leaks in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Loaded by no command that does not talk to the API or serve something.
HEAVY = (
    "httpx",
    "rich",
    "starlette",
    "uvicorn",
    "watchdog",
    "prometheus_client",
    "sqlite3",
    "reconciler.simulator.app",
    "reconciler.engine",
    "reconciler.execute",
)
# What parsing a manifest needs, and `--version` or `--help` do not.
PARSING = ("pydantic", "yaml", "asyncio", "reconciler.manifests", "reconciler.spec")

MANIFEST = """\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {name: web-app, project_id: 1}
spec:
  image: nginx:latest
  flavor_name: inference-16vcpu-232gib-1xh100-80gb
  listening_port: 80
  containers: [{region_id: 1, scale: {min: 1, max: 3}}]
"""


def loaded_after(*argv: str) -> tuple[int, set[str]]:
    """Run the CLI's entry point with `argv` in a fresh interpreter; its exit code and modules."""
    script = textwrap.dedent(
        f"""
        import contextlib, io, json, sys
        from reconciler.cli import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main({list(argv)!r})
            except SystemExit as exc:  # --version and --help exit through argparse
                code = exc.code
        print(json.dumps([code, sorted(sys.modules)]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    code, modules = json.loads(done.stdout.splitlines()[-1])
    return code, set(modules)


def roots(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["plan", "--help"]])
def test_version_and_help_load_nothing_heavy(argv: list[str]) -> None:
    code, modules = loaded_after(*argv)
    assert code == 0
    assert roots(modules, HEAVY + PARSING) == []


def test_validate_loads_the_parser_but_no_http_terminal_or_server_stack(tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST)
    code, modules = loaded_after("validate", str(manifest))
    assert code == 0
    assert "reconciler.manifests" in modules  # it did validate
    assert roots(modules, HEAVY) == []


def test_an_invalid_manifest_is_still_one_line_per_error(tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST.replace("listening_port: 80", "listening_port: 0"))
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{manifest}:" in done.stdout + done.stderr


def test_the_simulator_package_loads_its_parts_on_first_use() -> None:
    script = (
        "import json, sys; import reconciler.simulator as s; before = sorted(sys.modules); "
        "s.Simulator; print(json.dumps([before, sorted(sys.modules)]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    before, after = json.loads(done.stdout)
    assert "starlette" not in before and "reconciler.simulator.app" not in before
    assert "reconciler.simulator.app" in after


def test_the_engine_loads_neither_the_simulator_nor_deepdiff() -> None:
    """plan and apply against a real API need no server stack; deepdiff only where a deployment
    differs (`reconciler.diff` imports it there)."""
    script = "import json, sys; import reconciler.engine; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(json.loads(done.stdout))
    assert "reconciler.engine" in modules
    unwanted = ("starlette", "uvicorn", "reconciler.simulator.app", "deepdiff")
    assert roots(modules, unwanted) == []


def test_the_engine_loads_no_terminal_stack_through_httpx() -> None:
    """`import httpx` loads httpx's own command-line client (click, rich, pygments: ~0.1 s of
    every command that talks to the API) unless `reconciler` has marked it absent first."""
    script = (
        "import json, sys; import reconciler.engine; "
        "print(json.dumps(sorted(n for n, m in sys.modules.items() if m is not None)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(json.loads(done.stdout))
    assert "httpx" in modules
    assert roots(modules, ("httpx._main", "click", "rich", "pygments")) == []


def test_the_engine_loads_the_executor_only_for_apply() -> None:
    """`plan` and `status` go through the engine without the executor and its journal."""
    script = "import json, sys; import reconciler.engine; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(json.loads(done.stdout))
    assert "reconciler.engine" in modules and "reconciler.plan" in modules
    assert sorted(m for m in modules if m.startswith("reconciler.execute")) == []
