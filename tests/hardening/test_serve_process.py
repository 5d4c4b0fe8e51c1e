"""`reconciler serve` as a real process: a FIFO among the manifests, a client that walks away
mid-body, and every log line (ours and uvicorn's) in the chosen JSON format."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ..canary import CANARIES, assert_no_canary, state_bytes
from ..conftest import manifest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the service exited"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the service never answered")


def test_serve_keeps_answering_and_logs_only_json(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    os.mkfifo(folder / "pipe.yaml")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    env["RECONCILER_WEBHOOK_SECRET"] = CANARIES["webhook_secret"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "serve", "--manifests", str(folder), "--simulate",
         "--state", str(tmp_path / "state.db"), "--listen", f"127.0.0.1:{port}",
         "--log-format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz", proc)
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/api/status", timeout=5).json()["last_reconcile"] is None:
            assert time.monotonic() < deadline, "no reconcile finished"
            time.sleep(0.1)
        status = httpx.get(f"{base}/api/status", timeout=5).json()
        errors = status["last_reconcile"]["errors"]
        assert any("pipe.yaml:1:1: not a regular file" in e for e in errors), status
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        # a client that sends half a body and goes away
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        # a request uvicorn itself refuses
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"GARBAGE\x00\r\n\r\n")
            conn.recv(1000)
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        bodies = {
            path: httpx.get(f"{base}{path}", timeout=5).text
            for path in ("/", "/api/status", "/metrics", "/healthz", "/readyz")
        }
        bodies["bad hook"] = httpx.post(f"{base}/hooks/git", content=b"{}", timeout=5).text
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lines = err.splitlines()
    assert lines, "no log lines"
    for line in lines:
        record = json.loads(line)  # every line, uvicorn's included, is one JSON object
        assert "Traceback" not in record.get("message", ""), line
    assert "Traceback" not in err
    assert_no_canary({**bodies, "stderr": err})


def test_serve_never_logs_or_serves_a_secret_the_api_echoes(tmp_path: Path) -> None:
    # the API answers an unknown flavor with an error naming it; the flavor came from ${FLV}
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    leaky = manifest("leaky-svc").replace("flavor_name: ", "flavor_name: ${FLV} # ", 1)
    (folder / "leaky-svc.yaml").write_text(leaky)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    env.update(FLV=CANARIES["flavor"], RECONCILER_WEBHOOK_SECRET=CANARIES["webhook_secret"])
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "serve", "--manifests", str(folder),
             "--simulate", "--state", str(tmp_path / "state.db"),
             "--listen", f"127.0.0.1:{port}", "--log-format", "json"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base}/healthz", proc)
            deadline = time.monotonic() + 60
            while httpx.get(f"{base}/api/status", timeout=5).json()["last_reconcile"] is None:
                assert time.monotonic() < deadline, "no reconcile finished"
                time.sleep(0.1)
            bodies = {
                path: httpx.get(f"{base}{path}", timeout=5).text
                for path in ("/", "/api/status", "/metrics", "/deployments/1/leaky-svc", "/plan")
            }
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = log.read_text()
    assert "(sensitive)" in err and "1/leaky-svc" in err, err[-2000:]  # the refusal, redacted
    assert_no_canary({**bodies, "stderr": err, "state": state_bytes(tmp_path / "state.db")})
