"""Recordings archived end to end: the sandbox's audio into a local folder and a real S3 server."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pendulum
import pytest

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import assert_matches_truth, query, read_state, sync
from .procs import run_cli, sandbox_env, sync_args


def recorded(sb: Sandbox) -> dict[str, dict[str, Any]]:
    """The sandbox's calls that have a recording, by id."""
    return {c["id"]: c for c in sb.truth()["calls"] if c["recording_url"]}


def day_path(call: dict[str, Any]) -> str:
    return pendulum.parse(call["started_at"]).in_timezone("UTC").format("YYYY/MM/DD")


def rows(db: Path) -> dict[str, tuple[Any, ...]]:
    return {
        r[0]: r[1:]
        for r in query(
            db, "select call_id, uri, bytes, sha256, content_type from neuron.recordings"
        )
    }


def test_a_sync_archives_every_recording_once_byte_for_byte(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sb = make_sandbox(calls=120)
    folder = tmp_path / "recordings"
    first = sync(sb, tmp_path, source_args={"recordings_url": str(folder)})
    assert first.exit_code == runner.EXIT_OK, first.error
    db = tmp_path / "calls.duckdb"
    want = recorded(sb)
    assert want and first.report.recordings == len(want)
    stored = rows(db)
    assert set(stored) == set(want)
    for call_id, call in want.items():
        audio = sb.recording_bytes(call_id)
        path = folder / day_path(call) / f"{call_id}.wav"
        assert path.read_bytes() == audio  # playable: the same WAV the API serves
        assert stored[call_id] == (
            str(path),
            len(audio),
            hashlib.sha256(audio).hexdigest(),
            "audio/wav",
        )
    assert not list(folder.rglob("*.part-*"))  # no temporary file left
    assert_matches_truth(db, sb.truth())
    assert b"token=" not in db.read_bytes()

    # later runs download only the new recordings; a backfill downloads none again
    sb.advance(6 * 3600)
    sb.reset_stats()
    second = sync(sb, tmp_path, source_args={"recordings_url": str(folder)})
    assert second.exit_code == runner.EXIT_OK, second.error
    new = set(recorded(sb)) - set(want)
    assert new and sb.stats()["by_endpoint"]["recording"] == len(new)
    assert set(rows(db)) == set(recorded(sb))
    sb.reset_stats()
    window = {"backfill_from": "2020-01-01T00:00:00Z", "backfill_to": sb.now().isoformat()}
    backfill = sync(sb, tmp_path, source_args={"recordings_url": str(folder)}, **window)
    assert backfill.exit_code == runner.EXIT_OK, backfill.error
    assert sb.stats()["by_endpoint"]["recording"] == 0
    assert rows(db) == {k: v for k, v in rows(db).items()}  # rebuilt from the stored files
    assert set(rows(db)) == set(recorded(sb))


def test_a_refused_recording_keeps_its_call_pending_and_the_run_goes_on(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sb = make_sandbox(calls=80)
    ready = sb.truth()["transcripts"]
    # the newest recorded call whose transcript does not keep it pending anyway
    victim = next(i for i, c in recorded(sb).items() if not c["transcript_job_id"] or i in ready)
    sb.refuse_recording(victim)
    folder = tmp_path / "recordings"
    first = sync(sb, tmp_path, source_args={"recordings_url": str(folder)})
    assert first.exit_code == runner.EXIT_OK, first.error  # one recording never fails a run
    db = tmp_path / "calls.duckdb"
    assert first.report.pending_recordings == 1
    assert read_state(db)["pending"][victim]["reason"] == "recording failed"
    assert victim not in rows(db) and len(rows(db)) == len(recorded(sb)) - 1
    sb.refuse_recording(victim, refuse=False)
    sb.reset_stats()
    second = sync(sb, tmp_path, source_args={"recordings_url": str(folder)})
    assert second.exit_code == runner.EXIT_OK
    assert victim in rows(db) and victim not in read_state(db)["pending"]
    assert sb.stats()["by_endpoint"]["recording"] == 1


def test_the_recordings_command_archives_calls_already_loaded(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sb = make_sandbox(calls=100)
    db = tmp_path / "calls.duckdb"
    env = sandbox_env(tmp_path, sb)
    assert run_cli(tmp_path, sync_args(db), env).returncode == 0
    calls_before = query(db, "select * exclude (_dlt_load_id) from neuron.calls order by id")
    folder = tmp_path / "archive"
    args = [
        sys.executable,
        "-m",
        "pipelines",
        "recordings",
        "--duckdb",
        str(db),
        "--from",
        "2020-01-01",
        "--to",
        sb.now().isoformat(),
    ]
    missing = run_cli(tmp_path, args, env)
    assert missing.returncode == runner.EXIT_CONFIG
    assert "SOURCES__NEURON__RECORDINGS_URL" in missing.stderr
    done = run_cli(tmp_path, args, {**env, "SOURCES__NEURON__RECORDINGS_URL": str(folder)})
    assert done.returncode == 0, done.stderr
    assert f"archived {len(recorded(sb))}" in done.stdout
    assert set(rows(db)) == set(recorded(sb))
    assert query(db, "select * exclude (_dlt_load_id) from neuron.calls order by id") == (
        calls_before
    )
    assert "token=" not in done.stdout + done.stderr


def test_an_unwritable_recordings_url_is_one_line_exit_2(sandbox: Sandbox, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    db = tmp_path / "calls.duckdb"
    proc = run_cli(
        tmp_path,
        [sys.executable, "-m", "pipelines", "sync", "--duckdb", str(db)],
        {**sandbox_env(tmp_path, sandbox), "SOURCES__NEURON__RECORDINGS_URL": str(blocker / "x")},
    )
    assert proc.returncode == runner.EXIT_CONFIG, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SOURCES__NEURON__RECORDINGS_URL" in lines[0], proc.stderr
    assert not db.exists()


def test_recordings_go_to_a_real_s3_server(
    s3: Any,
    make_sandbox: Callable[..., Sandbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    bucket = s3.new_bucket("neuron-recordings")
    sb = make_sandbox(calls=60)
    url = f"s3://{bucket}/archive"
    first = sync(sb, tmp_path, source_args={"recordings_url": url})
    assert first.exit_code == runner.EXIT_OK, first.error
    fs = s3.filesystem()
    want = recorded(sb)
    stored = rows(tmp_path / "calls.duckdb")
    assert set(stored) == set(want)
    for call_id, call in want.items():
        key = f"{bucket}/archive/{day_path(call)}/{call_id}.wav"
        audio = sb.recording_bytes(call_id)
        assert fs.cat_file(key) == audio
        assert stored[call_id][:3] == (f"s3://{key}", len(audio), hashlib.sha256(audio).hexdigest())
    sb.reset_stats()
    window = {"backfill_from": "2020-01-01T00:00:00Z", "backfill_to": sb.now().isoformat()}
    again = sync(sb, tmp_path, source_args={"recordings_url": url}, **window)
    assert again.exit_code == runner.EXIT_OK
    assert sb.stats()["by_endpoint"]["recording"] == 0  # never twice
    assert not os.environ.get("SOURCES__NEURON__RECORDINGS_URL")
