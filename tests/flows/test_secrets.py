"""Secrets from the environment never reach anything a run writes or reports."""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler

from flows.cli import EXIT_FAILED, main
from flows.config import parse_config
from generators.errors import ConfigError

pytestmark = pytest.mark.slow
PLANTED = [
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AZURE_STORAGE_KEY",
    "DATABASE_PASSWORD",
]


def test_planted_secrets_appear_in_no_output_log_or_tracking_record(
    write_config, tmp_path, capsys, monkeypatch, prefect_harness
):
    secret = f"s3cr3t-{secrets.token_hex(12)}"
    for name in PLANTED:
        monkeypatch.setenv(name, secret)
    # An earlier in-process CLI run quiets Prefect's logger (see flows.cli._run); this run's
    # logs must reach the API to be scanned.
    prefect_logger = logging.getLogger("prefect")
    monkeypatch.setattr(prefect_logger, "level", logging.INFO)
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root (./mlruns) lands here too
    assert main(["run", str(write_config()), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["status"] == "published"

    scanned = 0
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file
            scanned += 1
    # The scan covered the output, the MLflow database and the logged artifacts.
    names = {file.name for file in tmp_path.rglob("*") if file.is_file()}
    assert {"synthetic.parquet", "mlflow.db", "suite.json", "MLmodel"} <= names
    assert scanned > 20
    assert secret not in captured.out + captured.err
    # The local MLflow store is as private as the run folder: the database and every
    # experiment's artifact folder (the model, the suite with real category values, plots).
    assert (tmp_path / "mlflow.db").stat().st_mode & 0o077 == 0
    experiments = [p for p in (tmp_path / "mlruns").iterdir() if p.is_dir()]
    assert experiments and all(p.stat().st_mode & 0o077 == 0 for p in experiments)

    # Prefect's record of the run: its parameters and its logs (shipped in the background).
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(uuid.UUID(result["flow_run_id"]))
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]))
        logs = client.read_logs(log_filter)
        for _ in range(20):
            if logs:
                break
            time.sleep(0.5)
            logs = client.read_logs(log_filter)
    assert logs, "the run's logs were not found, so the scan below would prove nothing"
    assert secret not in json.dumps(flow_run.parameters, default=str)
    assert all(secret not in log.message for log in logs)


TOKEN = "ghp_" + "x7" * 18  # a token, as GitHub and proxies take it in the user part
TOKEN_URIS = [
    f"https://{TOKEN}@mlflow.example.com/",
    f"https://user:{TOKEN}@mlflow.example.com/",
    f"https://mlflow.example.com/?token={TOKEN}",
    f"https://mlflow.example.com/api?access_token={TOKEN}",
]


@pytest.mark.parametrize("uri", TOKEN_URIS)
@pytest.mark.parametrize("key", ["uri", "fallback_uri"])
def test_a_token_in_any_url_form_of_a_tracking_uri_is_refused_unechoed(key, uri):
    raw = {"name": "run", "data": {"path": "t.csv"}, "tracking": {key: uri}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert f"tracking.{key}: holds" in str(caught.value) and TOKEN not in str(caught.value)


@pytest.mark.parametrize("uri", TOKEN_URIS[:1] + TOKEN_URIS[2:3])
def test_a_token_in_mlflow_tracking_uri_stops_the_run_unechoed(
    uri, write_config, tmp_path, capsys, monkeypatch, prefect_harness
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    # tracking.uri unset: the environment's URI would be used, printed and tagged.
    config = write_config(tracking={"uri": None, "experiment": "tests"})
    assert main(["run", str(config), "--json"]) == EXIT_FAILED
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "MLFLOW_TRACKING_URI: holds" in errors[0], captured.err[-2000:]
    assert TOKEN not in captured.out + captured.err
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert TOKEN.encode() not in file.read_bytes(), file


def test_an_unreachable_server_message_does_not_repeat_its_token(monkeypatch):
    import flows.tracking

    monkeypatch.setattr(flows.tracking, "probe", lambda *args: "connection refused")
    with pytest.raises(flows.tracking.TrackingUnavailable) as caught:
        flows.tracking.reachable_tracking_uri(f"https://{TOKEN}@host:5000/", None, attempts=1)
    assert TOKEN not in str(caught.value) and "https://***@host:5000" in str(caught.value)
