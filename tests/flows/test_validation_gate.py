"""Expectations and fidelity in the real flow: what is logged, what gates, and the suite later."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from flows.cli import EXIT_QUARANTINED, main
from flows.config import load_config
from flows.synthesize import EXPECTATIONS_DIR, PLOTS_DIR, QUARANTINE_DIR, synthesize

pytestmark = pytest.mark.slow
# The uniform baseline misses every real marginal: the suite must catch it.
UNIFORM = {"name": "uniform", "params": {}}
NO_PRIVACY = {"enabled": False}


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_failed_expectations_quarantine_with_on_failure_fail(
    write_config, tmp_path, prefect_harness
):
    config = load_config(
        write_config(generator=UNIFORM, privacy=NO_PRIVACY, validation={"on_failure": "fail"})
    )
    state = synthesize(config, return_state=True)
    assert state.is_failed() and "quarantined" in state.message
    assert "column '" in state.message  # the reasons name columns
    result = state.result(raise_on_failure=False)
    assert result.status == "quarantined"
    assert f"/{QUARANTINE_DIR}/" in result.output
    assert result.metrics["expectations.failed"] > 0
    assert result.metrics["expectations.success_percent"] < 100
    client = MlflowClient(config.tracking.uri)
    logged = _artifacts(client, result.mlflow_run_id)
    for name in ("suite.json", "validation_result.json", "data_docs.html"):
        assert f"{EXPECTATIONS_DIR}/{name}" in logged
    assert f"{PLOTS_DIR}/association_difference.png" in logged
    assert "preview.csv" not in logged  # a rejected table's rows are not handed out
    run = client.get_run(result.mlflow_run_id)
    assert "expect_column" in run.data.tags["synthpipe.gate_failures"]
    for metric in ("fidelity.quality", "fidelity.discriminator_auc", "fidelity.tstr_f1_macro"):
        assert metric in run.data.metrics


def test_failed_expectations_only_warn_by_default(write_config, tmp_path, prefect_harness):
    config = load_config(write_config(generator=UNIFORM, privacy=NO_PRIVACY))
    assert config.validation.on_failure == "warn"
    result = synthesize(config)
    assert result.status == "published"
    assert result.metrics["expectations.failed"] > 0
    run_dir = tmp_path / "outputs" / config.name / result.mlflow_run_id
    report = (run_dir / "report.md").read_text()
    assert "### expectations: failed (warning)" in report
    assert f"({EXPECTATIONS_DIR}/data_docs.html)" in report
    # Every plot the report links exists beside it.
    links = [line.split("](")[1].rstrip(")") for line in report.splitlines() if "![" in line]
    assert links and all((run_dir / link).is_file() for link in links)


def test_privacy_override_does_not_override_failed_expectations(
    write_config, tmp_path, capsys, prefect_harness
):
    path = write_config(generator=UNIFORM, privacy=NO_PRIVACY, validation={"on_failure": "fail"})
    assert main(["run", str(path), "--json", "--override-privacy-gate"]) == EXIT_QUARANTINED
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "quarantined"


def test_saved_suite_validates_the_published_table_like_the_run_did(
    write_config, tmp_path, capsys, prefect_harness
):
    config = load_config(write_config())  # gaussian_copula on the Adult slice
    result = synthesize(config)
    run_dir = tmp_path / "outputs" / config.name / result.mlflow_run_id
    docs = tmp_path / "later.html"
    capsys.readouterr()
    code = main(
        [
            "validate",
            str(run_dir / EXPECTATIONS_DIR / "suite.json"),
            result.output,
            "--json",
            "--docs",
            str(docs),
        ]
    )
    later = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert later["metrics"]["failed"] == result.metrics["expectations.failed"]
    assert later["metrics"]["evaluated"] == result.metrics["expectations.evaluated"]
    assert code == (0 if later["passed"] else EXIT_QUARANTINED)
    page = docs.read_text()  # GX renders each expectation as a sentence
    assert "values must be of type" in page and "Computed checks" in page


def test_validation_can_be_switched_off(write_config, tmp_path, prefect_harness):
    config = load_config(write_config(validation={"expectations": False, "fidelity": False}))
    result = synthesize(config)
    assert not any(key.startswith(("expectations.", "fidelity.")) for key in result.metrics)
    run_dir = tmp_path / "outputs" / config.name / result.mlflow_run_id
    assert not (run_dir / EXPECTATIONS_DIR).exists() and not (run_dir / PLOTS_DIR).exists()


def test_unknown_validation_key_names_it(write_config, capsys):
    path = write_config(validation={"on_failur": "fail"})
    assert main(["run", str(path)]) == 1
    assert "validation.on_failur: unknown key" in capsys.readouterr().err
