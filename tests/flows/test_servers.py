"""MLflow as a server and `synthpipe ui`, against real servers on 127.0.0.1.

- `mlflow_server`: `mlflow server` on a free port, SQLite backend and artifact root in a
  temporary folder. The flow logs to it over HTTP (tracking.uri: http://127.0.0.1:PORT);
  a fresh Python process then loads `models:/<name>@published` and samples.
- `ui`: `synthpipe ui` in a subprocess, on a fresh PREFECT_HOME and a SQLite MLflow store
  in a temporary folder. Its Prefect server is also the Prefect API of the flow runs here.
  The test fetches both pages and finds the flow run through both servers' REST APIs,
  then stops the command with SIGTERM and checks both servers are gone.

Both are started at once (startup dominates: a fresh database migrates on first start).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from flows import deploy
from flows.deploy import ServerError, free_port
from tests.flows.conftest import write_slice_config

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 240
FAST = {
    "validation": {"expectations": False, "fidelity": False, "plots": False},
    "privacy": {"attacks": False},
}


class UICommand:
    """`synthpipe ui` running in a subprocess; `ready()` waits for its two URLs."""

    def __init__(self, folder: Path):
        self.folder = folder
        exe = shutil.which("synthpipe", path=str(Path(sys.executable).parent))
        assert exe, "the synthpipe console script is not installed in this environment"
        self.store = f"sqlite:///{folder / 'mlflow.db'}"
        env = {**os.environ, "PREFECT_HOME": str(folder / "prefect-home")}
        env.pop("PREFECT_API_URL", None)
        env.pop("MLFLOW_TRACKING_URI", None)
        self.process = subprocess.Popen(
            [exe, "ui", "--tracking-uri", self.store, "--artifacts", str(folder / "mlruns")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=folder,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True).start()
        self.prefect_url = self.mlflow_url = ""

    def ready(self) -> UICommand:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self.prefect_url and self.mlflow_url):
            output = "".join(self.lines)
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"synthpipe ui did not start: {output[-3000:]}")
            found = dict(re.findall(r"^(Prefect|MLflow) UI:\s+(http://\S+)", output, re.M))
            self.prefect_url, self.mlflow_url = found.get("Prefect", ""), found.get("MLflow", "")
            time.sleep(0.5)
        return self

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    command = UICommand(tmp_path_factory.mktemp("ui"))
    try:
        yield command  # not waited for here: mlflow_server starts meanwhile
    finally:
        command.stop()


@pytest.fixture(scope="module")
def mlflow_server(ui, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    try:
        server = deploy.mlflow_server(
            port,
            f"sqlite:///{folder / 'mlflow.db'}",
            folder / "artifacts",
            folder / "server.log",
            env=env,
            cwd=folder,
        )
    except OSError as error:
        pytest.skip(f"cannot start `mlflow server` at all: {error}")
    try:
        server.wait_healthy(START_TIMEOUT_S)
    except ServerError as error:
        pytest.fail(str(error))
    try:
        yield {"url": f"http://127.0.0.1:{port}", "folder": folder}
    finally:
        server.stop()


@pytest.fixture
def prefect_api(ui):
    """In-process flow runs go to the Prefect server that `synthpipe ui` started."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.flows.test_deploy import drain_prefect_workers

    ui.ready()
    with temporary_settings(updates={PREFECT_API_URL: f"{ui.prefect_url}/api"}):
        yield ui
        drain_prefect_workers()


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode(errors="replace")


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _run_flow(tmp_path: Path, adult_slice: Path, name: str, tracking_uri: str):
    from flows.config import load_config
    from flows.synthesize import synthesize

    (tmp_path / name).mkdir()
    path = write_slice_config(
        tmp_path / name,
        adult_slice,
        name=name,
        tracking={"uri": tracking_uri, "experiment": "servers"},
        sample={"rows": 100, "seed": 7},
        **FAST,
    )
    result = synthesize(load_config(path))
    assert result.status == "published", result
    return result


def test_flow_logs_to_mlflow_server_and_a_fresh_process_samples_the_published_model(
    mlflow_server, prefect_api, tmp_path, adult_slice
):
    from mlflow.tracking import MlflowClient

    url = mlflow_server["url"]
    result = _run_flow(tmp_path, adult_slice, "served-model", url)

    client = MlflowClient(url)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["synthpipe.generator"]
    assert run.data.params["sample.rows"] == "100" and "rows_per_second" in run.data.metrics
    # Artifacts went through the server into its artifact root, not into this folder.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert list((mlflow_server["folder"] / "artifacts").rglob("report.md"))
    published = client.get_model_version_by_alias("served-model", "published")
    assert published.run_id == result.mlflow_run_id

    # A fresh interpreter that knows only the server's URL and the model's name.
    script = textwrap.dedent(
        """
        import json, sys
        import mlflow, pandas as pd
        mlflow.set_tracking_uri(sys.argv[1])
        model = mlflow.pyfunc.load_model("models:/served-model@published")
        frame = model.predict(pd.DataFrame({"rows": [50], "seed": [3]}))
        again = model.predict(pd.DataFrame({"rows": [50], "seed": [3]}))
        print(json.dumps({"rows": len(frame), "columns": list(frame.columns),
                          "same": bool(frame.equals(again))}))
        """
    )
    # The model is SDV's gaussian_copula, a pickle: this process trusts its own server.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "SYNTHPIPE_ALLOW_PICKLE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-c", script, url],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path / "served-model",  # no mlflow.db, no mlruns: only the server
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sampled = json.loads(done.stdout.strip().splitlines()[-1])
    assert sampled["rows"] == 50 and sampled["same"]
    assert "income" in sampled["columns"] and "age" in sampled["columns"]


def test_ui_serves_both_dashboards_with_the_run_and_stops_cleanly(
    prefect_api, tmp_path, adult_slice
):
    ui = prefect_api
    result = _run_flow(tmp_path, adult_slice, "ui-slice", ui.store)  # the ui's local store

    status, page = _get(ui.prefect_url + "/")
    assert status == 200 and "<html" in page.lower()
    script = re.search(r'src="(/assets/[^"]+\.js)"', page)
    assert script and _get(ui.prefect_url + script.group(1))[0] == 200
    status, page = _get(ui.mlflow_url + "/")
    assert status == 200 and "<html" in page.lower()

    # The dashboards' data: the flow run and its artifact in Prefect, the run and the
    # registered model in MLflow.
    prefect = f"{ui.prefect_url}/api"
    runs = _post(
        f"{prefect}/flow_runs/filter", {"flow_runs": {"id": {"any_": [result.flow_run_id]}}}
    )
    assert [(run["id"], run["state_type"]) for run in runs] == [(result.flow_run_id, "COMPLETED")]
    artifacts = _post(
        f"{prefect}/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [result.flow_run_id]}}},
    )
    assert [artifact["key"] for artifact in artifacts] == ["synthpipe-ui-slice"]
    mlflow_api = f"{ui.mlflow_url}/api/2.0/mlflow"
    experiment = _get(f"{mlflow_api}/experiments/get-by-name?experiment_name=servers")[1]
    experiment_id = json.loads(experiment)["experiment"]["experiment_id"]
    found = _post(f"{mlflow_api}/runs/search", {"experiment_ids": [experiment_id]})
    assert [run["info"]["run_id"] for run in found["runs"]] == [result.mlflow_run_id]
    models = json.loads(_get(f"{mlflow_api}/registered-models/search")[1])
    assert "ui-slice" in [model["name"] for model in models["registered_models"]]

    # SIGTERM (like Ctrl-C) stops both servers and exits 0.
    from tests.flows.test_deploy import drain_prefect_workers

    drain_prefect_workers()  # this process's buffered logs, while the server listens
    ports = [int(url.rsplit(":", 1)[1]) for url in (ui.prefect_url, ui.mlflow_url)]
    assert ui.stop() == 0, "".join(ui.lines)[-3000:]
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"
