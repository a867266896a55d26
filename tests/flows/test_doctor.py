"""`synthpipe doctor` on a real local MLflow store and real processes: it repairs what a
killed run leaves (RUNNING runs, staging folders, orphaned Prefect servers) and never
touches a live run, a run of another host, or a folder it cannot place.

The end-to-end case (a CLI killed with SIGKILL after registration) is in test_faults.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from flows import prefect_server
from flows.cli import main
from flows.doctor import HOST_TAG, PID_TAG, RUN_ROOT_TAG
from flows.prefect_server import EPHEMERAL_ENV, SERVER_APP, WATCHDOG, ephemeral_servers


def _ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    return uri, client, client.create_experiment("doctor")


def _run(client, experiment, root, pid, host=None, started_ms=None):
    tags = {HOST_TAG: host or socket.gethostname(), PID_TAG: str(pid), RUN_ROOT_TAG: str(root)}
    run = client.create_run(experiment, start_time=started_ms, tags=tags)
    staging = root / ".staging" / run.info.run_id
    staging.mkdir(parents=True)
    (staging / "synthetic.parquet").write_bytes(b"rows")
    return run.info.run_id, staging


def test_doctor_lists_then_repairs_dead_runs_only(store, tmp_path, capsys, monkeypatch):
    uri, client, experiment = store
    monkeypatch.setattr(prefect_server, "ephemeral_servers", lambda: [])
    root = tmp_path / "outputs" / "adult"
    dead, dead_staging = _run(client, experiment, root, _ended_pid())
    live, live_staging = _run(client, experiment, root, os.getpid())
    elsewhere, elsewhere_staging = _run(client, experiment, root, _ended_pid(), host="other")
    # A pid that runs again, but in a process started after the run: another process.
    reused = subprocess.Popen(["sleep", "60"])
    hour_ago = int((time.time() - 3600) * 1000)
    try:
        reused_run, reused_staging = _run(client, experiment, root, reused.pid, None, hour_ago)
        finished, finished_staging = _run(client, experiment, root, _ended_pid())
        client.set_terminated(finished, "FINISHED")
        # FINISHED for a moment while its process logs the model: still the live run's.
        logging, logging_staging = _run(client, experiment, root, os.getpid())
        client.set_terminated(logging, "FINISHED")
        unknown = root / ".staging" / "not-a-run-of-this-store"
        unknown.mkdir()

        assert main(["doctor", "--tracking-uri", uri]) == 1
        listed = capsys.readouterr().out
        for run_id in (dead, reused_run):
            assert f"would: mark the MLflow run {run_id} FAILED" in listed
        for folder in (dead_staging, reused_staging, finished_staging):
            assert f"would: remove {folder} " in listed
        for untouched in (live, elsewhere, logging, str(unknown)):
            assert untouched not in listed
        assert client.get_run(dead).info.status == "RUNNING" and dead_staging.is_dir()

        assert main(["doctor", "--tracking-uri", uri, "--fix"]) == 0
        capsys.readouterr()
        for run_id in (dead, reused_run):
            repaired = client.get_run(run_id)
            assert repaired.info.status == "FAILED"
            assert repaired.data.tags["synthpipe.status"] == "failed"
        for run_id in (live, elsewhere):
            assert client.get_run(run_id).info.status == "RUNNING"
        assert not dead_staging.exists() and not reused_staging.exists()
        assert not finished_staging.exists()
        assert live_staging.is_dir() and elsewhere_staging.is_dir() and unknown.is_dir()
        assert logging_staging.is_dir()
        assert reused.poll() is None  # the process that reuses the pid is not touched

        assert main(["doctor", "--tracking-uri", uri]) == 0
        assert "nothing to repair" in capsys.readouterr().out
    finally:
        reused.kill()
        reused.wait()


def _fake_server(parent: int) -> subprocess.Popen:
    """A process that looks like a WATCHDOG-started ephemeral server recorded for `parent`
    (it only sleeps)."""
    code = "import time; time.sleep(120)"
    env = {**os.environ, EPHEMERAL_ENV.decode().split("=")[0]: "1"}
    assert WATCHDOG  # the real server's argv: python -c WATCHDOG <parent> ... create_app
    return subprocess.Popen([sys.executable, "-c", code, str(parent), SERVER_APP], env=env)


def test_doctor_stops_an_orphaned_prefect_server_and_keeps_a_watched_one(
    tmp_path, capsys, monkeypatch
):
    orphan = _fake_server(parent=_ended_pid())
    kept = _fake_server(parent=os.getpid())
    ours = {orphan.pid, kept.pid}
    try:
        deadline = time.monotonic() + 30
        found = {}
        while time.monotonic() < deadline and set(found) != ours:
            found = {s.pid: s for s in ephemeral_servers() if s.pid in ours}
            time.sleep(0.1)
        assert found[orphan.pid].orphaned and not found[kept.pid].orphaned
        # Only this test's processes: other orphans on a shared machine are not its own.
        monkeypatch.setattr(prefect_server, "ephemeral_servers", lambda: list(found.values()))
        missing = f"sqlite:///{tmp_path / 'none.db'}"  # looking must not create a store
        assert main(["doctor", "--tracking-uri", missing]) == 1
        assert f"would: stop ephemeral Prefect server pid {orphan.pid}" in capsys.readouterr().out
        assert main(["doctor", "--tracking-uri", missing, "--fix"]) == 0
        assert not (tmp_path / "none.db").exists()
        assert orphan.wait(timeout=30) is not None
        assert kept.poll() is None
    finally:
        for process in (orphan, kept):
            process.kill()
            process.wait()
