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

from flows.cli import main

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
