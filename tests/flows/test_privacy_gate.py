"""The gate in the real flow: a copy is quarantined, never published; an override is recorded."""

from __future__ import annotations

import gzip
import json
import math

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from flows.cli import EXIT_QUARANTINED, main
from flows.config import load_config
from flows.synthesize import QUARANTINE_DIR, RunResult, synthesize

pytestmark = pytest.mark.slow
ROWS = 4000


@pytest.fixture
def shared_adult_slice(real_adult_file, tmp_path):
    """The first rows of ../shared/data/adult, raw."""
    path = tmp_path / "adult_head.csv"
    with gzip.open(real_adult_file, "rt") as source:
        path.write_text("".join(next(source) for _ in range(ROWS)))
    return path


def test_copy_generator_is_quarantined_and_nothing_is_published(
    write_config, shared_adult_slice, tmp_path, prefect_harness
):
    config = load_config(
        write_config(
            data={"path": str(shared_adult_slice)},
            generator={"name": "copy", "params": {}},
            sample={"rows": 2000},
        )
    )
    state = synthesize(config, return_state=True)
    assert state.is_failed()
    assert "quarantined" in state.message and "identical match share" in state.message
    result = state.result(raise_on_failure=False)
    assert isinstance(result, RunResult) and result.status == "quarantined"
    run_root = tmp_path / "outputs" / config.name
    assert result.output.startswith(str(run_root / QUARANTINE_DIR))
    published = [p for p in run_root.iterdir() if p.name not in (QUARANTINE_DIR, ".staging")]
    assert published == []
    metadata = pq.read_schema(result.output).metadata
    assert metadata[b"synthpipe.status"] == b"quarantined"
    run = MlflowClient(config.tracking.uri).get_run(result.mlflow_run_id)
    assert run.data.tags["synthpipe.status"] == "quarantined"
    assert "identical match share" in run.data.tags["synthpipe.gate_failures"]
    # It copies the protected training rows: each row the default protections left alone
    # (rare categories merged, isolated extremes clipped) matches a real training row, so
    # the sampled rows match at that rate, within 4 standard errors.
    metrics = run.data.metrics
    changed = metrics["privacy.rare_category_rows_merged"] + metrics["privacy.extreme_rows_clipped"]
    unchanged = 1 - changed / metrics["train_rows"]
    noise = 4 * math.sqrt(unchanged * (1 - unchanged) / config.sample.rows)
    assert changed > 0 and metrics["privacy.ims"] >= unchanged - noise
    # MLflow must not hand out what the gate rejected: no preview rows, no model.
    client = MlflowClient(config.tracking.uri)
    artifacts = {item.path for item in client.list_artifacts(result.mlflow_run_id)}
    assert "privacy.json" in artifacts and "preview.csv" not in artifacts
    assert "generator" not in artifacts and result.model_uri is None
    assert client.search_model_versions(f"name='{config.name}'") == []


def test_override_flag_publishes_and_records_it(
    write_config, shared_adult_slice, tmp_path, capsys, prefect_harness
):
    path = write_config(
        data={"path": str(shared_adult_slice)},
        generator={"name": "copy", "params": {}},
        sample={"rows": 500},
    )
    assert main(["run", str(path), "--json"]) == EXIT_QUARANTINED
    capsys.readouterr()
    assert main(["run", str(path), "--json", "--override-privacy-gate"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "published"
    metadata = pq.read_schema(result["output"]).metadata
    assert metadata[b"synthpipe.gate_overridden"] == b"true"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tags = client.get_run(result["mlflow_run_id"]).data.tags
    assert tags["synthpipe.gate_overridden"] == "true"
