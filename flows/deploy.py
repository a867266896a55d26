"""Deployments, schedules and local dashboards: the production route of a config.

- `deploy_configs`: one Prefect deployment per config (flow `synthpipe`, i.e.
  `flows.batch.run_config`, with the config's absolute path and overrides as parameters and
  the cron schedule), on a work pool (a `process` pool named `synthpipe` by default, created
  when missing). A worker (`prefect worker start --pool synthpipe`) runs them.
- `serve_configs`: the same deployments served by this process (`prefect.serve`): no work
  pool, no worker; runs start as subprocesses of the serving process.
- `start_ui`: the Prefect UI and the MLflow UI on the local stores, on free ports.

The config's `schedule: {cron, timezone}` block is `flows.config.ScheduleConfig`. Prefect's
deployment, runner and client modules are imported where they are used.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.batch import RUN_CONFIG_FLOW, run_config
from flows.config import ScheduleConfig, load_config
from generators.errors import ConfigError, SynthpipeError

DEFAULT_WORK_POOL = "synthpipe"
HOST = "127.0.0.1"
SERVER_START_TIMEOUT_S = 180.0  # a fresh Prefect database migrates on first start (~20 s here)
SERVER_STOP_TIMEOUT_S = 20.0


# -- deployments --------------------------------------------------------------------------
@dataclass
class ConfigDeployment:
    """What `synthpipe deploy` / `serve` made of one config."""

    name: str  # the deployment's name: the config's `name`
    config_path: str
    overrides: list[str]
    schedule: ScheduleConfig | None
    deployment: Any = field(repr=False)  # prefect's RunnerDeployment
    deployment_id: str | None = None

    @property
    def full_name(self) -> str:
        return f"{RUN_CONFIG_FLOW}/{self.name}"

    def describe(self) -> str:
        when = (
            f"cron '{self.schedule.cron}' ({self.schedule.timezone})"
            if self.schedule
            else "no schedule (run on demand)"
        )
        sets = f", --set {' '.join(self.overrides)}" if self.overrides else ""
        return f"{self.full_name}: {when}; {self.config_path}{sets}"


def config_deployments(
    config_paths: list[str | Path],
    overrides: list[str] | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    work_pool: str | None = None,
    job_variables: dict[str, Any] | None = None,
    paused: bool | None = None,
) -> list[ConfigDeployment]:
    """One deployment of `run_config` per config file, validated before anything is sent.

    The schedule is `cron` (in `timezone`, default UTC) when given, else the config's
    `schedule:` block, else none. Deployment names are the configs' `name`s, so they must
    differ. Raises ConfigError for a bad config, cron or time zone.
    """
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    overrides = list(overrides or [])
    override_schedule = None
    if cron is not None:
        try:
            override_schedule = ScheduleConfig(cron=cron, timezone=timezone or "UTC")
        except ConfigError as error:  # name the options the user typed
            message = str(error).replace("schedule.cron", "--cron")
            raise ConfigError(message.replace("schedule.timezone", "--timezone")) from None
    elif timezone is not None:
        raise ConfigError("--timezone: applies to --cron; give both, or neither")
    made: list[ConfigDeployment] = []
    for raw_path in config_paths:
        path = Path(raw_path).expanduser().resolve()
        config = load_config(path, overrides)
        schedule = override_schedule or getattr(config, "schedule", None)
        clash = next((d for d in made if d.name == config.name), None)
        if clash:
            raise ConfigError(
                f"{path}: name '{config.name}' is also the name of {clash.config_path}; "
                "deployments are named after the config's name, so give each config its own"
            )
        schedules = [Cron(schedule.cron, timezone=schedule.timezone)] if schedule else None
        deployment = run_config.to_deployment(
            name=config.name,
            schedules=schedules,
            paused=paused,
            parameters={"config_path": str(path), "overrides": overrides},
            description=f"synthpipe run of {path} (generator {config.generator.name})",
            tags=["synthpipe", f"generator:{config.generator.name}"],
            work_pool_name=work_pool,
            job_variables=job_variables,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        made.append(ConfigDeployment(config.name, str(path), overrides, schedule, deployment))
    return made


def ensure_work_pool(name: str) -> str:
    """The type of work pool `name`; a `process` pool is created when it does not exist."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            return client.read_work_pool(name).type
        except ObjectNotFound:
            pass
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=ProcessWorker.type,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="synthpipe runs as local processes (created by synthpipe deploy)",
                )
            )
        except ObjectAlreadyExists:  # created meanwhile by someone else
            return client.read_work_pool(name).type
        return ProcessWorker.type


def deploy_configs(
    config_paths: list[str | Path],
    overrides: list[str] | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    work_pool: str = DEFAULT_WORK_POOL,
    working_dir: str | Path | None = None,
    paused: bool | None = None,
    job_variables: dict[str, Any] | None = None,
) -> list[ConfigDeployment]:
    """Create (or update) one deployment per config on `work_pool` via the Prefect API.

    On a `process` pool, runs start in `working_dir` (default: the current directory), where
    relative `output.dir` and the default MLflow store (sqlite:///mlflow.db) resolve; a
    worker would otherwise start each run in a fresh temporary folder. Other pool types
    (kubernetes, docker) take theirs from the pool's template; `job_variables` (e.g.
    {"image": ...}) override it for these deployments.
    """
    made = config_deployments(config_paths, overrides, cron, timezone)  # validate first
    pool_type = ensure_work_pool(work_pool)
    variables: dict[str, Any] = {}
    if pool_type == "process":
        variables["working_dir"] = str(Path(working_dir or Path.cwd()).resolve())
    variables.update(job_variables or {})
    for item in made:
        item.deployment.job_variables = dict(variables)
        if paused is not None:
            item.deployment.paused = paused
        item.deployment_id = str(item.deployment.apply(work_pool_name=work_pool))
    return made


def serve_configs(
    config_paths: list[str | Path],
    overrides: list[str] | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    limit: int | None = None,
    on_ready=None,
) -> None:
    """Serve one deployment per config from this process until interrupted (Ctrl-C or
    SIGTERM): scheduled and triggered runs start as subprocesses, at most `limit` at once.
    `on_ready(deployments)` is called once they are registered. Schedules are paused when
    the process stops."""
    import asyncio

    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    made = config_deployments(config_paths, overrides, cron, timezone)
    # What prefect.serve does, with a hook once the deployments are registered.
    runner = Runner(pause_on_shutdown=True, limit=limit)
    for item in made:
        item.deployment_id = str(runner.add_deployment(item.deployment))
    if on_ready:
        on_ready(made)
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):
        pass


# -- local servers: `synthpipe ui` and the tests' fixtures ---------------------------------
def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on now (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerError(SynthpipeError):
    """A local server did not start (its log's tail is in the message)."""


class ServerProcess:
    """A server started as a child process in its own session (so stopping it stops its
    own children too), its output in a log file, ready once `health_url` answers 200."""

    def __init__(
        self,
        name: str,
        command: list[str],
        health_url: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.name, self.command, self.health_url = name, command, health_url
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )

    def wait_healthy(self, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
        """Poll `health_url` until it answers; raise ServerError (and stop the server) when
        the process exits or `timeout_s` passes first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise ServerError(
                    f"{self.name} exited with code {self.process.returncode} before it "
                    f"answered at {self.health_url}; its log ({self.log_path}) ends: "
                    f"{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.health_url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerError(
            f"{self.name} did not answer at {self.health_url} within {timeout_s:.0f} s; "
            f"its log ({self.log_path}) ends: {self.log_tail()}"
        )

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = SERVER_STOP_TIMEOUT_S) -> None:
        """SIGTERM to the server's process group, then SIGKILL after `timeout_s`."""
        if self.process.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout=timeout_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:  # the leader is gone; its children may not be
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()

    def log_tail(self, chars: int = 1500) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " ".join(text[-chars:].split())


def prefect_server(
    port: int, log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> ServerProcess:
    """`prefect server start` on 127.0.0.1:`port`, on the database of $PREFECT_HOME (in
    `env`, default this process's environment); not yet waited for."""
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect) if prefect.exists() else "prefect", "server", "start"]
    command += ["--host", HOST, "--port", str(port)]
    env = dict(os.environ if env is None else env)
    env.pop("PREFECT_API_URL", None)  # the server serves; it is not a client of another
    return ServerProcess(
        "prefect server", command, f"http://{HOST}:{port}/api/health", log_path, env, cwd
    )


def mlflow_server(
    port: int,
    backend_store_uri: str,
    artifacts_destination: str | Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """`mlflow server` on 127.0.0.1:`port`: runs in `backend_store_uri`, artifacts proxied to
    `artifacts_destination` (clients need only the server's URL); not yet waited for."""
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow) if mlflow.exists() else "mlflow", "server"]
    command += ["--host", HOST, "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", backend_store_uri]
    command += ["--artifacts-destination", str(artifacts_destination)]
    return ServerProcess(
        "mlflow server", command, f"http://{HOST}:{port}/health", log_path, env, cwd
    )


@dataclass
class LocalUI:
    prefect: ServerProcess
    mlflow: ServerProcess
    prefect_url: str
    mlflow_url: str
    log_dir: Path

    def stop(self) -> None:
        self.mlflow.stop()
        self.prefect.stop()


def start_ui(
    tracking_uri: str | None = None,
    artifacts: str | Path = "mlruns",
    prefect_port: int | None = None,
    mlflow_port: int | None = None,
    log_dir: Path | None = None,
    timeout_s: float = SERVER_START_TIMEOUT_S,
) -> LocalUI:
    """Start the Prefect UI (on $PREFECT_HOME's database, the one runs without
    PREFECT_API_URL use) and the MLflow UI (on `tracking_uri`, default $MLFLOW_TRACKING_URI
    else sqlite:///mlflow.db; local artifacts under `artifacts`) on 127.0.0.1, both started
    at once, and wait until both answer."""
    from flows.tracking import tracking_uri as resolve_tracking_uri

    store = resolve_tracking_uri(tracking_uri)
    if store.startswith(("http://", "https://")):
        raise ConfigError(
            f"--tracking-uri: {store} is a tracking server, which has its own UI; "
            "synthpipe ui serves a local store (sqlite:///..., or a database URI)"
        )
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="synthpipe-ui-"))
    prefect_port = prefect_port or free_port()
    mlflow_port = mlflow_port or free_port()
    prefect = prefect_server(prefect_port, log_dir / "prefect.log")
    try:
        mlflow = mlflow_server(
            mlflow_port, store, Path(artifacts).resolve(), log_dir / "mlflow.log"
        )
    except BaseException:
        prefect.stop()
        raise
    ui = LocalUI(
        prefect, mlflow, f"http://{HOST}:{prefect_port}", f"http://{HOST}:{mlflow_port}", log_dir
    )
    try:
        prefect.wait_healthy(timeout_s)
        mlflow.wait_healthy(timeout_s)
    except BaseException:
        ui.stop()
        raise
    return ui
