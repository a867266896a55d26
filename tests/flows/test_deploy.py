"""Deployments, schedules, serving and batches against a real `prefect server start`.

A module fixture starts the server on 127.0.0.1 on a free port (its own PREFECT_HOME and
SQLite database in a temporary folder, telemetry off), waits for /api/health and stops it.
The CLI, the worker and the served runs are real subprocesses talking to it over HTTP.
The first tests here need no server: argument and config errors end before any work.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest

from flows.cli import EXIT_FAILED, main
from flows.deploy import ScheduleConfig, ServerError, free_port, prefect_server
from generators.errors import ConfigError
from tests.flows.conftest import write_slice_config

WORK_POOL = "synthpipe-test"
RUN_TIMEOUT_S = 300  # one tiny run in a fresh process: ~40 s on a loaded 2-core machine
# A tiny, fast run: the Adult slice, GaussianCopula, the slow checks off.
FAST = {
    "validation": {"expectations": False, "fidelity": False, "plots": False},
    "privacy": {"attacks": False},
}


# -- no server needed -------------------------------------------------------------------
def test_schedule_config_checks_cron_and_timezone():
    assert ScheduleConfig(cron="0 2 * * *").timezone == "UTC"
    assert ScheduleConfig(cron="*/15 * * * 1-5", timezone="Europe/Berlin").cron
    with pytest.raises(ConfigError, match="schedule.cron: 'every day'"):
        ScheduleConfig(cron="every day")
    with pytest.raises(ConfigError, match="schedule.timezone: 'Mars/Olympus'"):
        ScheduleConfig(cron="0 2 * * *", timezone="Mars/Olympus")


def test_schedule_block_in_a_config(tmp_path, adult_slice):
    from flows.config import load_config

    path = write_slice_config(tmp_path, adult_slice, schedule={"cron": "30 1 * * *"})
    scheduled = load_config(path)
    assert scheduled.schedule == ScheduleConfig(cron="30 1 * * *")
    # When to run is not what to run: the config hash (in outputs and MLflow) ignores it.
    plain = load_config(write_slice_config(tmp_path, adult_slice))
    assert scheduled.digest() == plain.digest()
    bad = write_slice_config(tmp_path, adult_slice, schedule={"cron": "61 1 * * *"})
    with pytest.raises(ConfigError, match="schedule.cron"):
        load_config(bad)


def test_commands_reject_bad_input_before_any_work(tmp_path, write_config, capsys, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    config = str(write_config(**FAST))
    cases = {
        "bad cron": (["deploy", config, "--cron", "0 25 * * *"], "--cron"),
        "timezone alone": (["deploy", config, "--timezone", "UTC"], "--timezone"),
        "job variable": (["deploy", config, "--job-variable", "image"], "--job-variable"),
        "bad config": (["batch", config, "--set", "sample.rows=-1"], "sample.rows"),
        "bad parallel": (["batch", config, "--parallel", "0"], "--parallel"),
        "serve needs a server": (["serve", config], "PREFECT_API_URL"),
        "ui on a server": (["ui", "--tracking-uri", "http://127.0.0.1:1"], "tracking server"),
    }
    for case, (argv, named) in cases.items():
        assert main(argv) == EXIT_FAILED, case
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0], case
    (tmp_path / "b").mkdir()
    clash = write_slice_config(tmp_path / "b", tmp_path / "absent.csv", **FAST)
    assert main(["deploy", config, str(clash)]) == EXIT_FAILED  # same `name` twice
    assert "name 'adult-slice'" in capsys.readouterr().err


# -- a real Prefect server --------------------------------------------------------------
class Server:
    def __init__(self, home: Path, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.api_url = f"{self.url}/api"
        # What every client process gets: the server, a Prefect home of its own, no telemetry.
        self.env = {
            **os.environ,
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(home / "client"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "true",
            "PREFECT_RUNNER_POLL_FREQUENCY": "2",  # served runs start within ~2 s
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }
        self.env.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home / "server"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        # New deployments' schedules are turned into runs within a few seconds.
        "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "2",
    }
    try:
        process = prefect_server(port, home / "server.log", env=env, cwd=home)
    except OSError as error:
        pytest.skip(f"cannot start `prefect server start` at all: {error}")
    try:
        process.wait_healthy(timeout_s=240)
    except ServerError as error:
        pytest.fail(str(error))
    try:
        yield Server(home, port)
    finally:
        process.stop()
        assert not process.running()


@pytest.fixture
def api(server):
    """This test process's Prefect client settings point at the server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield server
        drain_prefect_workers()


def drain_prefect_workers() -> None:
    """Send this process's buffered Prefect logs and events now, while the server still
    listens (as prefect_test_harness does): after it stops they would be retried at exit."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:  # never started
            pass
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


def _synthpipe(*args: str, env: dict, cwd: Path, timeout: float = 300):
    exe = shutil.which("synthpipe", path=str(Path(sys.executable).parent))
    assert exe, "the synthpipe console script is not installed in this environment"
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def _wait_for_final_state(client, flow_run_id, timeout_s: float = RUN_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = client.read_flow_run(flow_run_id)
        if run.state and run.state.is_final():
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} not finished after {timeout_s} s: {run.state}")


def _children(client, flow_run_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
        )
    )


def _artifacts(client, flow_run_id):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    return client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )


def _check_published_run(client, flow_run, name: str) -> None:
    """The deployment's run Completed, its `synthesize` subflow too, with the summary
    artifact, and the synthetic Parquet file is where the run says."""
    assert flow_run.state.is_completed(), flow_run.state
    (synthesize_run,) = _children(client, flow_run.id)
    assert synthesize_run.state.is_completed() and synthesize_run.flow_id != flow_run.flow_id
    (summary,) = [a for a in _artifacts(client, synthesize_run.id) if a.type == "markdown"]
    assert summary.key == f"synthpipe-{name}" and "**published**" in summary.data
    output = next(line for line in summary.data.splitlines() if line.startswith("- output:"))
    assert pq.read_table(output.split("`")[1]).num_rows > 0


class Serving:
    """`synthpipe serve CONFIG --cron ...` in a subprocess, its output collected."""

    def __init__(self, config: Path, cron: str, env: dict, cwd: Path):
        exe = shutil.which("synthpipe", path=str(Path(sys.executable).parent))
        self.process = subprocess.Popen(
            [exe, "serve", str(config), "--cron", cron],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True).start()

    def wait_until_serving(self, deployment: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(line.startswith(f"serving {deployment}:") for line in self.lines):
            assert self.process.poll() is None, "".join(self.lines)[-3000:]
            assert time.monotonic() < deadline, f"serve printed nothing in {timeout_s} s"
            time.sleep(0.5)

    def interrupt(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "synthpipe serve still runs 90 s after SIGINT: " + "".join(self.lines)[-3000:]
            ) from None

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.mark.slow
def test_deployed_configs_run_on_a_worker_and_when_served(api, tmp_path, adult_slice):
    """The two routes side by side (their runs overlap, to keep the test short):

    - `synthpipe deploy` (a subprocess, as a user runs it) creates a deployment with a cron
      schedule on a process work pool; the server's scheduler makes runs from it; a
      triggered run is picked up by a real worker and runs in its own process.
    - `synthpipe serve` registers a deployment without a pool and runs a triggered run
      itself; interrupted, it exits 0 and pauses the schedule.
    Both runs are read back through the API: Completed, the synthesize subflow and its
    summary artifact, and the Parquet output the artifact names.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.deployments import run_deployment

    for folder in ("deployed", "served"):
        (tmp_path / folder).mkdir()
    config = write_slice_config(tmp_path / "deployed", adult_slice, **FAST)
    served_config = write_slice_config(
        tmp_path / "served", adult_slice, name="served-slice", **FAST
    )
    serving = Serving(served_config, "*/30 * * * *", api.env, tmp_path)
    try:
        done = _synthpipe(
            *("deploy", str(config), "--cron", "0 2 * * *", "--timezone", "Europe/Berlin"),
            *("--pool", WORK_POOL, "--set", "sample.rows=120"),
            *("--set", "output.dir=relative-outputs", "--json"),
            *("--job-variable", 'env={"SYNTHPIPE_DEPLOYED": "yes"}'),
            env=api.env,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        (made,) = json.loads(done.stdout.strip().splitlines()[-1])
        assert made["deployment"] == "synthpipe/adult-slice" and made["work_pool"] == WORK_POOL

        with get_client(sync_client=True) as client:
            deployment = client.read_deployment(made["deployment_id"])
            assert deployment.entrypoint == "flows.batch.run_config"
            assert deployment.parameters == {
                "config_path": str(config),
                "overrides": ["sample.rows=120", "output.dir=relative-outputs"],
            }
            assert deployment.work_pool_name == WORK_POOL
            assert client.read_work_pool(WORK_POOL).type == "process"
            assert deployment.job_variables == {
                "working_dir": str(tmp_path),
                "env": {"SYNTHPIPE_DEPLOYED": "yes"},
            }
            (schedule,) = deployment.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone) == (
                "0 2 * * *",
                "Europe/Berlin",
            )
            assert schedule.active and not deployment.paused

            # The server's scheduler turns the schedule into runs at 02:00 Berlin time.
            deadline = time.monotonic() + 60
            while True:
                scheduled = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
                )
                if scheduled or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert scheduled, "the scheduler made no runs from the deployment's cron"
            now = datetime.now(ZoneInfo("Europe/Berlin"))
            for run in scheduled:
                local = run.expected_start_time.astimezone(ZoneInfo("Europe/Berlin"))
                assert (local.hour, local.minute) == (2, 0) and local > now
                assert run.state.is_scheduled() and run.parameters == deployment.parameters

            serving.wait_until_serving("synthpipe/served-slice")
            served = client.read_deployment_by_name("synthpipe/served-slice")
            assert served.work_pool_name is None  # served: no pool, no worker
            assert [s.schedule.cron for s in served.schedules] == ["*/30 * * * *"]

            # Trigger both now: the served one starts at once, a worker runs the other.
            served_run = run_deployment(served.id, timeout=0)
            worker_run = run_deployment(deployment.id, timeout=0)
            worker = subprocess.run(
                [
                    str(Path(sys.executable).with_name("prefect")),
                    *("worker", "start", "--pool", WORK_POOL, "--run-once", "--limit", "1"),
                ],
                capture_output=True,
                text=True,
                env=api.env,
                cwd=tmp_path,
                timeout=RUN_TIMEOUT_S,
            )
            assert worker.returncode == 0, worker.stderr[-3000:]
            worker_run = _wait_for_final_state(client, worker_run.id, timeout_s=30)
            assert worker_run.parameters == deployment.parameters
            _check_published_run(client, worker_run, "adult-slice")
            # A relative output.dir resolved in the deployment's working_dir.
            assert (tmp_path / "relative-outputs" / "adult-slice").is_dir()

            served_run = _wait_for_final_state(client, served_run.id)
            _check_published_run(client, served_run, "served-slice")
            assert serving.interrupt() == 0, "".join(serving.lines)[-3000:]
            assert client.read_deployment(served.id).paused
    finally:
        serving.kill()


@pytest.mark.slow
def test_batch_runs_configs_as_subflows_and_gpu_runs_never_overlap(
    api, tmp_path, adult_slice, monkeypatch, capsys
):
    """`synthpipe batch` on four configs, two threads. Two 'use the GPU', so the global
    limit `gpu` (1 slot) runs them one after the other: their subflow runs' time spans must
    not overlap. One config's generator copies its training rows: it is quarantined. One
    config's data file is missing: it fails alone, named in the report."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    import flows.batch

    gpu_runs = {"slice-a", "slice-b"}  # the others run beside them, holding no slot
    monkeypatch.setattr(flows.batch, "uses_gpu", lambda config: config.name in gpu_runs)
    paths = []
    for name in ("slice-a", "slice-copy", "slice-b", "slice-missing"):
        (tmp_path / name).mkdir()
        data = adult_slice if name != "slice-missing" else tmp_path / "absent.csv"
        generator = {"name": "copy", "params": {}} if name == "slice-copy" else {}
        paths.append(
            str(write_slice_config(tmp_path / name, data, name=name, generator=generator, **FAST))
        )
    argv = ["batch", *paths, "--set", "sample.rows=100", "--parallel", "2", "--gpu-slots", "1"]
    assert main([*argv, "--json"]) == EXIT_FAILED
    out = capsys.readouterr().out.strip().splitlines()
    items = json.loads(out[-1])
    assert [(item["name"], item["status"], item["used_gpu"]) for item in items] == [
        ("slice-a", "published", True),
        ("slice-copy", "quarantined", False),
        ("slice-b", "published", True),
        ("slice-missing", "failed", False),
    ]
    published = [items[0], items[2]]
    assert "/quarantine/" in items[1]["output"] and "repeats training rows" in items[1]["error"]
    assert "absent.csv" in items[3]["error"] and "absent.csv" in out[-2]
    assert all(pq.read_table(item["output"]).num_rows == 100 for item in published)

    with get_client(sync_client=True) as client:
        gpu = client.read_global_concurrency_limit_by_name("gpu")
        assert (gpu.limit, gpu.active_slots) == (1, 0)
        (table,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["synthpipe-batch"]))
        )
        batch_run = client.read_flow_run(table.flow_run_id)
        assert batch_run.state.is_failed() and "2 of 4 configs not published" in (
            batch_run.state.message
        )
        # Each slot is held around the config's whole subflow, synthesize included.
        spans = []
        for item in published:
            synthesize_run = client.read_flow_run(item["flow_run_id"])
            assert synthesize_run.state.is_completed()
            spans.append((synthesize_run.start_time, synthesize_run.end_time))
        (a_start, a_end), (b_start, b_end) = sorted(spans)
        assert a_end <= b_start, f"GPU runs overlapped: {spans}"
