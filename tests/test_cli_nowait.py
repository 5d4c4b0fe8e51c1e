"""`apply --no-wait`: submit and record, leave the waiting to the next apply."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .test_cli_fixes import ROOT, cli


def test_no_wait_submits_and_the_next_apply_follows_up(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    sent = cli(tmp_path, "apply", "--simulate", "--auto-approve", "--no-wait", "manifests/")
    assert sent.returncode == 0, sent.stderr
    assert "1/my-instance create: submitted (not waited for" in sent.stdout
    assert "1 submitted in" in sent.stdout
    [row] = json.loads(cli(tmp_path, "status", "--simulate", "--format", "json").stdout)[
        "deployments"
    ]
    assert row["status"] in ("DEPLOYING", "PARTIALLYDEPLOYED", "ACTIVE")  # it was not waited on
    assert (
        row["message"]
        == "submitted; not waited for (apply --no-wait); the next apply follows it up"
    )
    followed = cli(tmp_path, "apply", "--simulate", "--auto-approve", "manifests/")
    assert followed.returncode == 0, followed.stderr
    assert "following up 1 create submitted by apply --no-wait: 1/my-instance" in followed.stderr
    assert "interrupted" not in followed.stderr
    history = json.loads(cli(tmp_path, "history", "my-instance", "--format", "json").stdout)
    assert [h["result"] for h in history["history"]] == ["resumed"]
