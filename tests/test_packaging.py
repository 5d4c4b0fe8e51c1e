"""The Dockerfile and the Kubernetes example must stay true to the CLI and the HTTP routes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from reconciler.cli import build_parser

ROOT = Path(__file__).parent.parent


def _exec_form(line: str) -> list[str]:
    value: list[str] = json.loads(line.split(None, 1)[1])
    return value


def test_the_dockerfile_default_command_parses_and_probes_a_real_route() -> None:
    text = (ROOT / "Dockerfile").read_text()
    cmd = _exec_form(next(li for li in text.splitlines() if li.startswith("CMD ")))
    entrypoint = _exec_form(next(li for li in text.splitlines() if li.startswith("ENTRYPOINT ")))
    assert entrypoint == ["reconciler"]
    args = build_parser().parse_args(cmd)
    assert args.command == "serve" and args.manifests == "/manifests"
    assert args.listen == ("0.0.0.0", 8080)
    assert "RECONCILER_STATE=/state/state.db" in text
    health = re.search(r"HEALTHCHECK[^\n]*\n[^\n]*(http://127\.0\.0\.1:8080(/\w+))", text)
    assert health and health.group(2) == "/healthz"


def test_the_kubernetes_example_parses_and_probes_real_routes() -> None:
    from reconciler.config import ApiSettings
    from reconciler.engine import Target
    from reconciler.service import Service
    from reconciler.sources import DirectorySource
    from reconciler.web import build_app

    documents: list[dict[str, Any]] = list(
        yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text())
    )
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve" and args.git_url and args.listen == ("0.0.0.0", 8080)
    env = {e["name"]: e for e in container["env"]}
    assert env["GCORE_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "GCORE_API_KEY"
    service = Service(DirectorySource(ROOT / "manifests"), Target(ApiSettings(), ROOT / "x.db"))
    app_routes = {getattr(route, "path", None) for route in build_app(service).routes}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"/healthz", "/readyz", "/metrics"} <= app_routes
    claims = [d for d in documents if d["kind"] == "PersistentVolumeClaim"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert claims and "/state" in mounts


def test_a_cli_process_started_by_a_test_runs_the_code_under_test(tmp_path: Path) -> None:
    # a test's `python -m reconciler` runs from some other folder: without the checkout on its
    # path it imports whatever copy is installed, and proves nothing about this one
    found = subprocess.run(
        [sys.executable, "-c", "import reconciler; print(reconciler.__file__)"],
        cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(found.stdout.strip()).resolve().parent.parent == ROOT.resolve()
