"""Faults mid-run: servers down, a full disk, an unusable output folder, a killed writer.

Each run either completes, or fails with one clear line and leaves nothing on the output
path; an unreachable server is found before any training starts.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

import flows.tasks
from flows.cli import main
from flows.config import load_config
from flows.synthesize import synthesize
from generators.errors import DataError
from tests.conftest import REPO
from tests.flows.conftest import PLAIN_CSV, assert_nothing_written

pytestmark = pytest.mark.slow


def _closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _fit_must_not_run(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("training started although the run could not be tracked")

    monkeypatch.setattr(flows.tasks, "generator_class", fail)


def test_unreachable_prefect_server_fails_before_the_flow_in_one_line(
    write_config, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{_closed_port()}/api")
    _fit_must_not_run(monkeypatch)
    assert main(["run", str(write_config())]) == 1
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "PREFECT_API_URL" in errors[0] and "after 3 tries" in errors[0]
    assert_nothing_written(tmp_path / "outputs")


def test_unreachable_mlflow_server_fails_before_training(
    write_config, tmp_path, capsys, monkeypatch, prefect_harness
):
    _fit_must_not_run(monkeypatch)
    dead = f"http://127.0.0.1:{_closed_port()}"
    assert main(["run", str(write_config(tracking={"uri": dead}))]) == 1
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "cannot reach the MLflow server" in errors[0]
    assert "tracking.fallback_uri" in errors[0]  # says what to do
    assert_nothing_written(tmp_path / "outputs")


def test_unreachable_mlflow_server_falls_back_to_local_tracking_when_configured(
    write_config, tmp_path, prefect_harness
):
    dead = f"http://127.0.0.1:{_closed_port()}"
    local = f"sqlite:///{tmp_path / 'fallback.db'}"
    config = load_config(write_config(tracking={"uri": dead, "fallback_uri": local}))
    result = synthesize(config)
    assert result.status == "published"
    tags = MlflowClient(local).get_run(result.mlflow_run_id).data.tags
    assert tags["synthpipe.tracking_fallback_from"] == dead


def test_full_disk_while_writing_fails_clearly_and_publishes_nothing(
    write_config, tmp_path, capsys, monkeypatch, prefect_harness
):
    attempts = []

    def disk_full(*args, **kwargs):
        attempts.append(1)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(flows.tasks, "write_parquet_atomic", disk_full)
    path = write_config()
    assert main(["run", str(path)]) == 1
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1
    assert "output.dir: cannot write" in errors[0] and "No space left" in errors[0]
    assert len(attempts) == 1  # a full disk is not retried
    assert_nothing_written(tmp_path / "outputs")
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(["1"])[0]
    assert run.info.status == "FAILED"


def test_output_dir_that_cannot_be_created_fails_in_one_line(
    write_config, tmp_path, capsys, prefect_harness
):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    path = write_config(output={"dir": str(blocker / "outputs")})
    assert main(["run", str(path)]) == 1
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "output.dir: cannot create" in errors[0]
    assert blocker.read_text() == "not a folder"


def test_run_folders_are_owner_only(write_config, tmp_path, prefect_harness):
    result = synthesize(load_config(write_config()))
    run_dir = tmp_path / "outputs" / "adult-slice" / result.mlflow_run_id
    for folder in (tmp_path / "outputs", run_dir.parent, run_dir):
        assert folder.stat().st_mode & 0o777 == 0o700, folder


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import pyarrow as pa
    from generators.data.parquet import write_parquet_atomic

    rows = 3_000_000
    table = pa.table({f"c{i}": np.random.default_rng(i).random(rows) for i in range(8)})
    print("ready", flush=True)
    write_parquet_atomic(table, sys.argv[1])
    """
)


def test_a_killed_writer_leaves_no_file_on_the_published_path(tmp_path):
    target = tmp_path / "out" / "synthetic.parquet"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(target)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        # Kill it mid-write: once its temporary file holds data, before the rename.
        while time.monotonic() < deadline:
            partial = [p for p in target.parent.glob(".*.tmp") if p.stat().st_size > 0]
            if partial or target.exists():
                break
            time.sleep(0.005)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
    assert partial, "the writer finished before it could be killed; make the table larger"
    assert not target.exists()  # readers of the published name never see half a file


AUTOREGRESSIVE = {
    "name": "autoregressive",
    "params": {"epochs": 4, "width": 16, "early_stopping_patience": 0},
}


def _crash_after_epoch(monkeypatch, epoch: int, times: int) -> list[int]:
    """Make training crash right after checkpointing any epoch from `epoch` on, the first
    `times` times."""
    from generators.base import Generator

    original, crashes = Generator._save_checkpoint, []

    def crashing(self, done, state):
        original(self, done, state)
        if done >= epoch and len(crashes) < times:
            crashes.append(done)
            raise RuntimeError("simulated crash during training")

    monkeypatch.setattr(Generator, "_save_checkpoint", crashing)
    return crashes


def test_a_training_crash_is_retried_from_the_last_checkpoint(
    write_config, tmp_path, monkeypatch, prefect_harness
):
    crashes = _crash_after_epoch(monkeypatch, epoch=2, times=1)
    config = load_config(write_config(generator=AUTOREGRESSIVE))
    result = synthesize(config)
    assert crashes == [2] and result.status == "published"
    assert result.metrics["resumed_from_epoch"] == 2
    assert not (tmp_path / "outputs" / config.name / ".checkpoints").exists()


def test_a_rerun_after_a_failed_fit_resumes_and_new_data_starts_afresh(
    write_config, tmp_path, monkeypatch, prefect_harness, adult_slice
):
    # The task crashes after epoch 2; its retry resumes and crashes after epoch 3.
    _crash_after_epoch(monkeypatch, epoch=2, times=2)
    config = load_config(write_config(generator=AUTOREGRESSIVE))
    assert synthesize(config, return_state=True).is_failed()
    checkpoints = tmp_path / "outputs" / config.name / ".checkpoints"
    assert len(list(checkpoints.iterdir())) == 1  # kept for the next run
    resumed = synthesize(config)
    assert resumed.metrics["resumed_from_epoch"] == 3

    _crash_after_epoch(monkeypatch, epoch=2, times=2)
    assert synthesize(config, return_state=True).is_failed()
    changed = tmp_path / "changed.csv"  # the nightly file changed: same config, new rows
    changed.write_text("".join(adult_slice.read_text().splitlines(keepends=True)[:-40]))
    config = load_config(write_config(generator=AUTOREGRESSIVE, data={"path": str(changed)}))
    fresh = synthesize(config)
    assert "resumed_from_epoch" not in fresh.metrics


def test_a_failed_final_rename_leaves_the_published_alias_on_the_run_before(
    write_config, tmp_path, capsys, monkeypatch, prefect_harness
):
    path = write_config()
    config = load_config(path)
    before = synthesize(config)
    store = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert store.get_model_version_by_alias(config.name, "published").run_id == (
        before.mlflow_run_id
    )

    rename = Path.rename

    def refused(self, target):
        if self.parent.name == ".staging":  # the run folder's move into place
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", refused)
    assert main(["run", str(path)]) == 1
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "cannot move the run" in errors[0], errors
    runs = store.search_runs(["1"], order_by=["attributes.start_time DESC"])
    failed = runs[0]
    assert failed.info.run_id != before.mlflow_run_id and failed.info.status == "FAILED"
    # The failed run's model was registered (logged from staging) but not promoted.
    versions = store.search_model_versions(f"name='{config.name}'")
    assert {v.run_id for v in versions} == {before.mlflow_run_id, failed.info.run_id}
    published = store.get_model_version_by_alias(config.name, "published")
    assert published.run_id == before.mlflow_run_id
    run_root = tmp_path / "outputs" / config.name
    assert not (run_root / failed.info.run_id).exists()
    assert (run_root / before.mlflow_run_id / "synthetic.parquet").is_file()


# The CLI, stopped for good right after the run's model is registered: just before the
# run folder would move into place.
_KILLED_AFTER_REGISTRATION = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from prefect import task
    import flows.synthesize
    from flows.cli import main

    @task
    def publish_never(staging_dir, final_dir):
        Path(sys.argv[2]).write_text("registered")
        time.sleep(3600)

    flows.synthesize.publish = publish_never
    sys.exit(main(["run", sys.argv[1]]))
    """
)


def _children_servers(parent: int) -> list[int]:
    from flows.prefect_server import ephemeral_servers

    return [server.pid for server in ephemeral_servers() if server.parent == parent]


def test_a_cli_killed_after_registration_is_repaired_and_its_prefect_server_stops(
    write_config, tmp_path, capsys, monkeypatch, prefect_harness
):
    from flows import prefect_server

    path = write_config()
    marker = tmp_path / "registered"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PYTHONPATH"] = str(REPO)
    cli = subprocess.Popen(
        [sys.executable, "-c", _KILLED_AFTER_REGISTRATION, str(path), str(marker)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    servers = []
    try:
        deadline = time.monotonic() + 400
        while not marker.exists() and cli.poll() is None and time.monotonic() < deadline:
            servers = servers or _children_servers(cli.pid)
            time.sleep(0.2)
        servers = servers or _children_servers(cli.pid)
        assert marker.exists(), f"the run never reached registration (exit {cli.poll()})"
        assert len(servers) == 1  # the CLI's own ephemeral Prefect server
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and servers[0] in _alive_pids():
            time.sleep(0.5)
        assert servers[0] not in _alive_pids(), "the killed CLI's Prefect server kept running"
    finally:
        cli.kill()
        for pid in servers:  # without the watchdog: stop the server this test started
            prefect_server.stop(pid)

    store = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (killed,) = store.search_runs(["1"])
    staging = tmp_path / "outputs" / "adult-slice" / ".staging" / killed.info.run_id
    assert killed.info.status == "RUNNING" and killed.data.tags["synthpipe.status"] == "published"
    assert (staging / "synthetic.parquet").is_file()
    # Servers of other users of this machine are never the test's to stop.
    monkeypatch.setattr(prefect_server, "ephemeral_servers", lambda: [])
    capsys.readouterr()
    assert main(["doctor", str(path)]) == 1
    listed = capsys.readouterr().out
    assert f"mark the MLflow run {killed.info.run_id} FAILED" in listed
    assert f"remove {staging}" in listed
    assert store.get_run(killed.info.run_id).info.status == "RUNNING"  # only listed
    assert staging.is_dir()

    later = synthesize(load_config(path))  # repairs its own output folder's leftovers
    assert later.status == "published"
    assert store.get_run(killed.info.run_id).info.status == "FAILED"
    assert store.get_run(killed.info.run_id).data.tags["synthpipe.status"] == "failed"
    assert not staging.exists()
    published = store.get_model_version_by_alias("adult-slice", "published")
    assert published.run_id == later.mlflow_run_id
    capsys.readouterr()
    assert main(["doctor", str(path)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def _alive_pids() -> set[int]:
    alive = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(int(entry.name))
    return alive


def test_mlflow_keys_are_unique_and_within_mlflows_limit():
    from flows.tracking import MAX_KEY_CHARS, mlflow_keys

    long = "x" * 300
    names = ["data.schema.a?b", "data.schema.a!b", "data.schema.a_b", long, long[:-1], "plain"]
    keys = mlflow_keys(names)
    assert len(set(keys.values())) == len(names)
    assert all(len(key) <= MAX_KEY_CHARS for key in keys.values())
    # Names MLflow takes as they are keep their key: the golden runs' keys do not move.
    assert keys["data.schema.a_b"] == "data.schema.a_b" and keys["plain"] == "plain"


def test_long_and_colliding_column_names_are_logged_apart(
    write_config, tmp_path, capsys, prefect_harness
):
    long_name = "measurement_" + "x" * 240  # data.schema.<it> is beyond 250 characters
    rows = 240
    frame = pd.DataFrame(
        {
            long_name: np.random.default_rng(0).normal(size=rows),
            "size": np.random.default_rng(1).integers(1, 50, rows),
            # Class labels become metric names (downstream.*.recall.<label>): both are a_b.
            "label": np.where(np.arange(rows) % 3 == 0, "a?b", "a!b"),
        }
    )
    data = tmp_path / "long.csv"
    frame.to_csv(data, index=False)
    path = write_config(
        data={**PLAIN_CSV, "path": str(data), "target": "label", "schema": {long_name: "numeric"}}
    )
    code = main(["run", str(path)])
    err = capsys.readouterr().err
    assert code in (0, 3) and "Traceback" not in err, err[-2000:]
    (run,) = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(["1"])
    schema_params = [key for key in run.data.params if key.startswith("data.schema.")]
    assert len(schema_params) == 1 and len(schema_params[0]) <= 250
    assert run.data.params[schema_params[0]] == "numeric"
    recalls = [key for key in run.data.metrics if key.startswith("downstream.real.recall.")]
    assert len(recalls) == 2, recalls  # one per label, neither overwriting the other


def test_a_deleted_experiment_fails_in_one_line(write_config, tmp_path, capsys, prefect_harness):
    store = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    store.delete_experiment(store.create_experiment("tests"))
    assert main(["run", str(write_config())]) == 1
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "tracking.experiment: 'tests' is deleted" in errors[0], errors
    assert "restore" in errors[0]
    assert_nothing_written(tmp_path / "outputs")


def test_an_empty_experiment_name_fails_in_one_line(
    write_config, tmp_path, capsys, prefect_harness
):
    assert main(["run", str(write_config(tracking={"experiment": ""}))]) == 1
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "tracking.experiment" in errors[0], errors
    assert_nothing_written(tmp_path / "outputs")


_FIRST_RUN = textwrap.dedent(
    """
    import os, sys, time
    from flows.tracking import RunTracker

    print("ready", flush=True)
    while not os.path.exists(sys.argv[2]):  # both processes start their run at once
        time.sleep(0.005)
    print(RunTracker(sys.argv[1], "race", "first", {}).run_id)
    """
)


def test_the_first_two_runs_on_a_fresh_store_both_start(tmp_path):
    uri, go = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _FIRST_RUN, uri, str(go)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    assert [run.stdout.readline().strip() for run in runs] == ["ready", "ready"]
    go.touch()
    outcomes = [run.communicate(timeout=300) for run in runs]
    for run, (_, err) in zip(runs, outcomes, strict=True):
        assert run.returncode == 0, err[-3000:]
    started = {out.split()[-1] for out, _ in outcomes}
    listed = {r.info.run_id for r in MlflowClient(uri).search_runs(["1"])}
    assert len(started) == 2 and started == listed


def _count_reads(monkeypatch) -> list[str]:
    import flows.modalities.base

    real, reads = flows.modalities.base.read_table, []

    def counted(path, *args, **kwargs):
        reads.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(flows.modalities.base, "read_table", counted)
    return reads


def test_ingest_does_not_retry_a_bad_format(
    write_config, tmp_path, capsys, monkeypatch, prefect_harness
):
    corrupt = tmp_path / "corrupt.parquet"
    pq.write_table(pa.table({"a": list(range(100)), "b": [str(i) for i in range(100)]}), corrupt)
    body = bytearray(corrupt.read_bytes())
    body[-60:-8] = b"\xff" * 52  # the footer's metadata, between intact magic bytes
    corrupt.write_bytes(bytes(body))
    reads = _count_reads(monkeypatch)
    assert main(["run", str(write_config(data={**PLAIN_CSV, "path": str(corrupt)}))]) == 1
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and str(corrupt) in errors[0], errors
    assert len(reads) == 1  # pyarrow calls it an OSError, but a retry reads the same bytes


def test_ingest_retries_a_passing_io_error(
    write_config, tmp_path, capsys, monkeypatch, prefect_harness
):
    import flows.modalities.base

    reads = []

    def flaky(path, *args, **kwargs):  # as a reader reports a flaky share
        reads.append(path)
        try:
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        except OSError as error:
            raise DataError(f"{path}: cannot read ({error.strerror})") from None

    monkeypatch.setattr(flows.modalities.base, "read_table", flaky)
    assert main(["run", str(write_config())]) == 1
    assert len(reads) == 3  # the first read and both retries
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "Input/output error" in errors[0], errors


def test_a_full_disk_while_saving_the_model_is_not_retried(
    write_config, tmp_path, capsys, monkeypatch, prefect_harness
):
    from generators.table.sdv import GaussianCopulaGenerator

    fits, real_fit = [], GaussianCopulaGenerator.fit

    def counted_fit(self, *args, **kwargs):
        fits.append(1)
        return real_fit(self, *args, **kwargs)

    def disk_full(self, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(GaussianCopulaGenerator, "fit", counted_fit)
    monkeypatch.setattr(GaussianCopulaGenerator, "save", disk_full)
    assert main(["run", str(write_config())]) == 1
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1, errors
    assert "cannot save the trained model in" in errors[0] and "No space left" in errors[0]
    assert "generator" in errors[0]  # names the folder
    assert len(fits) == 1  # trained once: a full disk stays full
    assert_nothing_written(tmp_path / "outputs")


def test_a_failed_success_marker_leaves_the_published_alias_on_the_run_before(
    write_config, tmp_path, memory, monkeypatch, prefect_harness
):
    from fsspec.implementations.memory import MemoryFileSystem

    from generators.data.remote import SUCCESS_MARKER

    fs, url = memory
    fast = {
        "validation": {"expectations": False, "fidelity": False, "plots": False},
        "privacy": {"attacks": False},
    }
    config = load_config(
        write_config(output={"dir": f"{url}/runs", "local_dir": str(tmp_path / "local")}, **fast)
    )
    before = synthesize(config)
    store = MlflowClient(config.tracking.uri)
    assert store.get_model_version_by_alias(config.name, "published").run_id == (
        before.mlflow_run_id
    )
    pipe_file = MemoryFileSystem.pipe_file

    def no_marker(self, path, *args, **kwargs):
        if path.endswith(SUCCESS_MARKER):
            raise OSError(errno.EIO, "the store went away")
        return pipe_file(self, path, *args, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "pipe_file", no_marker)
    assert synthesize(config, return_state=True).is_failed()
    # Registered from staging before the marker, but the marker never came: not promoted.
    assert len(store.search_model_versions(f"name='{config.name}'")) == 2
    published = store.get_model_version_by_alias(config.name, "published")
    assert published.run_id == before.mlflow_run_id
    assert fs.exists(f"{url}/runs/{config.name}/{before.mlflow_run_id}/{SUCCESS_MARKER}")
