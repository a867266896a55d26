"""The real `synthesize` flow under Prefect's test harness, on a slice of the shipped Adult file."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from flows.config import load_config
from flows.synthesize import synthesize
from generators.data.tables import read_table
from tests.flows.conftest import PLAIN_CSV, assert_nothing_written, write_slice_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published(tmp_path_factory, adult_slice, prefect_harness):
    """One real run, shared by the assertions below (a run takes seconds, not milliseconds)."""
    config = load_config(write_slice_config(tmp_path_factory.mktemp("run"), adult_slice))
    return config, synthesize(config)


def test_publishes_parquet_with_the_input_arrow_types(published):
    config, result = published
    _, input_arrow = read_table(
        config.data.path,
        columns=config.data.columns,
        separator=config.data.separator,
        na_values=config.data.na_values,
    )
    table = pq.read_table(result.output)
    assert result.status == "published"
    assert table.num_rows == config.sample.rows == result.rows
    assert table.schema.names == config.data.columns
    assert [f.type for f in table.schema] == [f.type for f in input_arrow]
    # The slice has missing workclass/occupation: the synthetic data keeps some missing too.
    frame = table.to_pandas()
    assert frame["occupation"].isna().any()


def test_output_metadata_names_run_generator_seed_and_versions(published):
    config, result = published
    metadata = {k.decode(): v.decode() for k, v in pq.read_schema(result.output).metadata.items()}
    assert metadata["synthpipe.run_id"] == result.mlflow_run_id
    assert metadata["synthpipe.generator"] == "gaussian_copula"
    assert metadata["synthpipe.seed"] == "7"
    assert metadata["synthpipe.config_hash"] == config.digest()
    assert metadata["synthpipe.status"] == "published"
    assert json.loads(metadata["synthpipe.versions"])["pyarrow"] == pa.__version__


# What a published run writes beside its data, and logs to MLflow.
RUN_FILES = (
    "config.yaml",
    "schema.json",
    "preview.csv",
    "report.md",
    "privacy.json",
    "expectations.json",
    "fidelity.json",
)


def test_run_folder_layout(published):
    config, result = published
    run_dir = Path(result.output).parent
    assert run_dir.name == result.mlflow_run_id and run_dir.parent.name == config.name
    for name in (*RUN_FILES, "generator"):
        assert (run_dir / name).exists(), name
    assert not (run_dir.parent / ".staging" / result.mlflow_run_id).exists()


def test_mlflow_run_has_params_metrics_artifacts_and_registered_model(published):
    config, result = published
    client = MlflowClient(config.tracking.uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["generator.name"] == "gaussian_copula"
    assert run.data.params["sample.rows"] == "300"
    for metric in ("fit_seconds", "sample_seconds", "rows_per_second", "fidelity.column_shapes"):
        assert metric in run.data.metrics, metric
    assert run.data.tags["synthpipe.flow_run_id"] == result.flow_run_id
    artifacts = {item.path for item in client.list_artifacts(result.mlflow_run_id)}
    assert set(RUN_FILES) <= artifacts
    report = json.loads((Path(result.output).parent / "privacy.json").read_text())
    assert report["details"]["definitions"]["dcr_share"].startswith("mostlyai-qa")
    assert report["metrics"]["dcr_share"] == run.data.metrics["privacy.dcr_share"]
    # The default protections ran before training and say what they changed.
    changed = report["details"]["protection"]
    for metric, key in (
        ("privacy.rare_category_rows_merged", "rare_category_rows_merged"),
        ("privacy.extreme_rows_clipped", "extreme_rows_clipped"),
    ):
        assert run.data.metrics[metric] == sum(changed[key].values()) > 0, metric
    assert "privacy.extremes.singular_share" in run.data.metrics
    version = client.get_model_version_by_alias(config.name, "published")
    assert (
        str(version.version) == result.registered_version and version.run_id == result.mlflow_run_id
    )


def test_registered_model_samples_rows_of_the_same_schema(published, monkeypatch):
    config, result = published
    mlflow.set_tracking_uri(config.tracking.uri)
    monkeypatch.setenv("SYNTHPIPE_ALLOW_PICKLE", "1")  # gaussian_copula: this test's own store
    model = mlflow.pyfunc.load_model(f"models:/{config.name}@published")
    rows = model.predict(pd.DataFrame({"rows": [25], "seed": [7]}))
    published_rows = pq.read_table(result.output).to_pandas()
    assert list(rows.columns) == list(published_rows.columns) and len(rows) == 25
    # Same generator, same seed: the model reproduces the first published rows exactly.
    generator = model.unwrap_python_model().generator
    assert rows.equals(generator.sample(25, seed=7))


def test_prefect_run_carries_a_markdown_summary_artifact(published):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    config, result = published
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(result.flow_run_id)])
            )
        )
    summaries = [a for a in artifacts if a.type == "markdown"]
    assert len(summaries) == 1
    text = summaries[0].data
    assert result.output in text and "privacy" in text and result.mlflow_run_id in text


def test_same_config_and_seed_give_identical_output(published, prefect_harness):
    config, result = published
    again = synthesize(config)
    assert again.output != result.output
    assert pq.read_table(again.output).equals(pq.read_table(result.output))


def test_failed_run_leaves_nothing_and_marks_mlflow_failed(write_config, tmp_path, prefect_harness):
    data = tmp_path / "with_empty_column.csv"
    rows = ["a,b,empty"] + [f"{i},{i % 3}," for i in range(50)]
    data.write_text("\n".join(rows) + "\n")
    config = load_config(write_config(data={"path": str(data), **PLAIN_CSV}))
    state = synthesize(config, return_state=True)
    assert state.is_failed()
    assert "empty" in str(state.result(raise_on_failure=False))
    assert_nothing_written(tmp_path / "outputs")
    client = MlflowClient(config.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert runs and runs[0].info.status == "FAILED"
    assert "empty" in runs[0].data.tags["synthpipe.error"]


def test_dp_run_trains_under_budget_and_logs_epsilon(write_config, tmp_path, prefect_harness):
    config = load_config(
        write_config(
            generator={
                "name": "vae",
                "params": {"epochs": 2, "batch_size": 50, "latent_dim": 4, "hidden_dims": [16]},
            },
            privacy={"dp": {"epsilon": 1.5}},
        )
    )
    result = synthesize(config)
    spent = result.metrics["privacy.dp_epsilon_spent"]
    assert 0 < spent <= 1.5 + 1e-6
    run = MlflowClient(config.tracking.uri).get_run(result.mlflow_run_id)
    assert run.data.metrics["privacy.dp_epsilon_spent"] == pytest.approx(spent)
    assert run.data.params["privacy.dp.epsilon"] == "1.5"


def test_tracking_failure_after_the_output_is_written_publishes_nothing(
    write_config, tmp_path, prefect_harness, monkeypatch
):
    from flows.tracking import RunTracker

    def unreachable(*args, **kwargs):
        raise OSError("model registry unreachable")

    monkeypatch.setattr(RunTracker, "log_generator", unreachable)
    config = load_config(write_config())
    state = synthesize(config, return_state=True)
    assert state.is_failed() and "unreachable" in str(state.result(raise_on_failure=False))
    assert_nothing_written(tmp_path / "outputs")
    client = MlflowClient(config.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert runs[0].info.status == "FAILED"


def test_column_names_mlflow_rejects_are_sanitised_in_keys(tmp_path, prefect_harness, write_config):
    data = tmp_path / "odd.csv"
    rows = ["id,income>50K,score (0-1)"] + [
        f"{i},{'yes' if i % 3 else 'no'},{i / 60:.3f}" for i in range(60)
    ]
    data.write_text("\n".join(rows) + "\n")
    config = load_config(
        write_config(
            data={
                "path": str(data),
                **PLAIN_CSV,
                "target": "income>50K",
                "schema": {"score (0-1)": "numeric"},
            },
            sample={"rows": 30},
        )
    )
    result = synthesize(config)
    run = MlflowClient(config.tracking.uri).get_run(result.mlflow_run_id)
    assert "data.schema.score _0-1_" in run.data.params
    # Comparison signs are spelled out, so "income>50K" and "income<50K" stay distinct.
    assert "privacy.inference_incomegt50K.risk" in run.data.metrics


@pytest.mark.shared_data
def test_shipped_nyc_taxis_config_runs_on_the_shared_data(shared_data, tmp_path, prefect_harness):
    """Datetimes and missing values of a second real table, through the shipped config."""
    from tests.conftest import REPO

    config = load_config(
        REPO / "configs" / "nyc_taxis.yaml",
        [
            "sample.rows=500",
            f"output.dir={tmp_path / 'out'}",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        ],
    )
    # load_config resolves data.path (symbolic links too): compare resolved paths
    assert Path(config.data.path) == (shared_data / "nyc_taxis" / "taxis.csv.gz").resolve()
    result = synthesize(config)
    table = pq.read_table(result.output)
    assert result.status == "published" and table.num_rows == 500
    assert str(table.schema.field("pickup").type) == "timestamp[ns]"
    frame = table.to_pandas()
    assert frame["payment"].isna().any() or frame["dropoff_zone"].isna().any()
    # GaussianCopula's output is scored and pictured, and the scores are in MLflow.
    metrics = MlflowClient(config.tracking.uri).get_run(result.mlflow_run_id).data.metrics
    assert 0 < metrics["fidelity.quality"] < metrics["fidelity.quality_holdout"] <= 1
    assert metrics["expectations.evaluated"] > 0
    plots = Path(result.output).parent / "plots"
    assert (plots / "association_difference.png").is_file()
    assert len(list((plots / "columns").glob("*.png"))) == len(frame.columns)
