"""`state export` / `state import`: a round trip keeps every record, the unfinished journal and
the hashes; an import needs the source's key and an empty store; bad documents are one line."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.model import DeploymentKey, Record
from reconciler.state import open_store
from reconciler.statekey import ENV_KEY, ENV_KEY_FILE

CANARY = "canary-Secret-7f3a"


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv(ENV_KEY_FILE, raising=False)
    monkeypatch.delenv("RECONCILER_STATE", raising=False)


def _populate(location: str) -> tuple[dict[DeploymentKey, Record], str]:
    store = open_store(location)
    digest = store.hash_value(CANARY)
    for n in range(3):
        store.save_record(
            Record(
                key=DeploymentKey(1 + n % 2, f"app-{n}"),
                last_applied={"image": f"nginx:{n}", "envs": {"TOKEN": digest}},
                applied_at=100.0 + n,
                outcome="converged",
                revision="abc",
                sensitive_paths=frozenset({("envs", "TOKEN")}),
                labels={"team": "search"},
                annotations={"reconciler/prune": "false"},
            )
        )
    entry = store.journal_intent(DeploymentKey(1, "app-9"), "create", {"fields": ["image"]})
    store.journal_tasks(entry, ["task-1"])
    done = store.journal_intent(DeploymentKey(1, "app-0"), "update", {})
    store.journal_done(done, "converged")
    records = store.records()
    store.close()
    return records, digest


def test_export_then_import_into_a_sqlite_file_keeps_everything(
    state_location: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    records, digest = _populate(state_location)
    out = tmp_path / "backup.json"
    assert main(["state", "export", "--state", state_location, "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert CANARY not in text and digest in text
    assert json.loads(text)["format"] == "reconciler-state"

    # The source's key material comes along by reference, never inside the document.
    source_key = Path(f"{state_location}.key")
    if source_key.exists():
        assert source_key.read_text().strip() not in text
        monkeypatch.setenv(ENV_KEY_FILE, str(source_key))
    target = tmp_path / "moved" / "state.db"
    capsys.readouterr()
    assert main(["state", "import", str(out), "--state", str(target)]) == 0
    assert "imported 3 records and 1 unfinished journal entry" in capsys.readouterr().out

    moved = open_store(target)
    assert moved.records() == records
    assert moved.hash_value(CANARY) == digest  # secrets compare equal: no spurious change
    [entry] = moved.unfinished()
    assert (entry.key, entry.action, entry.task_ids, entry.state) == (
        DeploymentKey(1, "app-9"),
        "create",
        ("task-1",),
        "submitted",
    )
    moved.close()


@pytest.mark.slow
def test_a_sqlite_inventory_moves_to_postgresql(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "state.db"
    records, digest = _populate(str(source))
    out = tmp_path / "backup.json"
    assert main(["state", "export", "--state", str(source), "--out", str(out)]) == 0
    # Without the source's key the import is refused and writes nothing.
    assert main(["state", "import", str(out), "--state", pg_dsn]) == 1
    assert open_store(pg_dsn).records() == {}
    monkeypatch.setenv(ENV_KEY_FILE, f"{source}.key")
    assert main(["state", "import", str(out), "--state", pg_dsn]) == 0
    moved = open_store(pg_dsn)
    assert moved.records() == records
    assert moved.hash_value(CANARY) == digest
    moved.close()


def test_an_import_without_the_source_key_is_refused_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "a" / "state.db"
    _populate(str(source))
    out = tmp_path / "backup.json"
    main(["state", "export", "--state", str(source), "--out", str(out)])
    target = tmp_path / "b" / "state.db"
    capsys.readouterr()
    assert main(["state", "import", str(out), "--state", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hashed with another key" in err
    assert ENV_KEY_FILE in err and "Traceback" not in err
    assert open_store(target).records() == {}


def test_an_import_into_a_store_that_has_records_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "state.db"
    records, _ = _populate(str(source))
    out = tmp_path / "backup.json"
    main(["state", "export", "--state", str(source), "--out", str(out)])
    capsys.readouterr()
    assert main(["state", "import", str(out), "--state", str(source)]) == 1
    assert "import into an empty one" in capsys.readouterr().err
    assert open_store(source).records() == records


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"format": "reconciler-state",\n  "records": [}', "backup.json:2:15: not JSON"),
        ('{"format": "something-else"}', "backup.json: format: Input should be"),
        (
            '{"format": "reconciler-state", "format_version": 1, "schema_version": 1, '
            '"hash": {"salt": "0123456789", "hash_key": "none", "key_check": "0123456789"}, '
            '"records": [{"project_id": 0, "name": "x", "last_applied": {}, '
            '"applied_at": 1, "outcome": "converged"}]}',
            "backup.json: records.0.project_id: Input should be greater than or equal to 1",
        ),
    ],
)
def test_a_bad_document_is_one_line_naming_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "backup.json"
    path.write_text(text)
    code = main(["state", "import", str(path), "--state", str(tmp_path / "s" / "state.db")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and expected in err, err


def test_credentials_secrets_and_api_keys_move_with_the_inventory_still_hashed(
    state_location: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from reconciler.kinds import Kind, ObjectKey
    from reconciler.objects_plan import ObjectRecord
    from reconciler.state.objects import open_object_records

    _, digest = _populate(state_location)
    store = open_store(state_location)
    objects = open_object_records(store)
    assert objects is not None
    saved = [
        ObjectRecord(
            key=ObjectKey(Kind.SECRET, 1, "sqs"),
            last_applied={"type": "aws-iam", "data": {"aws_secret_access_key": digest}},
            applied_at=5.0,
            sensitive_paths=frozenset({("data", "aws_secret_access_key")}),
        ),
        ObjectRecord(key=ObjectKey(Kind.API_KEY, 2, "ci"), last_applied={}, applied_at=6.0),
    ]
    for record in saved:
        objects.save(record)
    store.close()

    out = tmp_path / "backup.json"
    assert main(["state", "export", "--state", state_location, "--out", str(out)]) == 0
    text = out.read_text()
    assert CANARY not in text and len(json.loads(text)["objects"]) == 2
    source_key = Path(f"{state_location}.key")
    if source_key.exists():
        monkeypatch.setenv(ENV_KEY_FILE, str(source_key))
    target = tmp_path / "moved" / "state.db"
    capsys.readouterr()
    assert main(["state", "import", str(out), "--state", str(target)]) == 0
    assert "with 2 credentials, secrets and API keys" in capsys.readouterr().out
    moved = open_store(target)
    objects = open_object_records(moved)
    assert objects is not None
    assert objects.records() == {r.key: r for r in saved}
    assert moved.hash_value(CANARY) == digest
    moved.close()
    # A second import into the same store is refused, objects included.
    assert main(["state", "import", str(out), "--state", str(target)]) == 1
