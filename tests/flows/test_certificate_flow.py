"""The release certificate and the approval step on real flow runs and a real SQLite MLflow
store: what the run writes and logs, and what `synthpipe approve` records and refuses."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flows.cli import main
from flows.config import load_config
from flows.result import outcome_of
from flows.synthesize import synthesize
from tests.browser import colour_share, dump_dom, screenshot
from tests.flows.conftest import write_slice_config

pytestmark = pytest.mark.slow

FAST = {"plots": False}
PASS_GREEN = (0x1E, 0x7D, 0x32)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def store(tmp_path_factory, adult_slice, prefect_harness):
    """Two real runs in one MLflow store: a release that waits for approval, and a run the
    gate quarantined (expectations set to fail). Returns (folder, releases, quarantined)."""
    folder = tmp_path_factory.mktemp("certificate")
    release = load_config(
        write_slice_config(folder, adult_slice, output={"require_approval": True}, validation=FAST)
    )
    published = synthesize(release)
    failing = load_config(
        write_slice_config(
            folder,
            adult_slice,
            name="adult-failing",
            validation={**FAST, "on_failure": "fail", "fidelity": False, "downstream": False},
        )
    )
    quarantined = outcome_of(synthesize(failing, return_state=True)).value  # no downstream
    assert published.status == "published" and quarantined.status == "quarantined"
    return release, published, quarantined


def test_run_folder_holds_the_certificate_of_this_run(store):
    config, result, _ = store
    run_dir = Path(result.output).parent
    certificate = json.loads((run_dir / "certificate.json").read_text())
    assert certificate["run"]["run_id"] == result.mlflow_run_id
    assert certificate["run"]["config_hash"] == config.digest()
    assert certificate["dataset"]["path"] == config.data.path
    assert certificate["run"]["approval_required"] is True
    assert certificate["threat_model"]["holdout_rows"] == result.metrics["holdout_rows"]
    assert certificate["fidelity"]["fidelity"]["figures"]["quality"] == pytest.approx(
        result.metrics["fidelity.quality"]
    )
    # The hashes are of the files as published, after the rename out of staging.
    files = {f["path"]: f["sha256"] for f in certificate["released_files"]}
    assert set(files) == {"synthetic.parquet", "preview.csv"}
    for name, digest in files.items():
        assert sha256(run_dir / name) == digest, name


def test_certificate_lists_every_privacy_measure_of_the_run(store):
    _, result, _ = store
    run_dir = Path(result.output).parent
    figures = json.loads((run_dir / "privacy.json").read_text())["metrics"]
    measures = json.loads((run_dir / "certificate.json").read_text())["privacy"]["measures"]
    listed = {m["key"] for m in measures}
    parts = {k for k in figures if re.search(r"(ci_low|ci_high|[._]p_value)$", k)}
    assert listed == set(figures) - parts
    assert all(m["verdict"] in ("pass", "recorded") for m in measures)
    assert {m["verdict"] for m in measures} == {"pass", "recorded"}


def test_mlflow_holds_the_certificate_and_its_hash(store, tmp_path):
    config, result, _ = store
    client = MlflowClient(config.tracking.uri)
    logged = {a.path for a in client.list_artifacts(result.mlflow_run_id, "certificate")}
    assert logged == {"certificate/certificate.json", "certificate/certificate.html"}
    path = client.download_artifacts(result.mlflow_run_id, "certificate/certificate.json", tmp_path)
    local = Path(result.output).parent / "certificate.json"
    tag = client.get_run(result.mlflow_run_id).data.tags["synthpipe.certificate_sha256"]
    assert sha256(Path(path)) == sha256(local) == tag


def test_prefect_summary_links_the_certificate_and_the_approval(store):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    _, result, _ = store
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(result.flow_run_id)])
            )
        )
    [summary] = [a.data for a in artifacts if a.type == "markdown"]
    location = str(Path(result.output).parent / "certificate.html")
    assert f"]({Path(location).as_uri()})" in summary
    assert f"synthpipe approve {result.mlflow_run_id} --by NAME" in summary


def test_certificate_of_the_run_renders_styled_offline(store, tmp_path):
    _, result, _ = store
    run_dir = Path(result.output).parent
    measures = json.loads((run_dir / "certificate.json").read_text())["privacy"]["measures"]
    dom = dump_dom(run_dir / "certificate.html", tmp_path)
    for measure in measures:
        verdict = measure["verdict"]
        pattern = rf'data-measure="{re.escape(measure["key"])}">.*?class="verdict {verdict}">'
        assert re.search(pattern + verdict.upper(), dom), measure["key"]
    assert colour_share(screenshot(run_dir / "certificate.html", tmp_path), PASS_GREEN) > 0.002


def test_alias_waits_for_approval_and_approve_moves_it(store, capsys):
    config, result, _ = store
    client = MlflowClient(config.tracking.uri)
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(config.name, "published")
    assert client.get_run(result.mlflow_run_id).data.tags["synthpipe.approval"] == "pending"
    argv = ["approve", result.mlflow_run_id, "--by", "Ada Lovelace"]
    assert main([*argv, "--tracking-uri", config.tracking.uri, "--json"]) == 0
    approval = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    version = client.get_model_version_by_alias(config.name, "published")
    assert version.run_id == result.mlflow_run_id
    assert str(version.version) == result.registered_version == approval["model_version"]
    digest = sha256(Path(result.output).parent / "certificate.json")
    for tags in (client.get_run(result.mlflow_run_id).data.tags, version.tags):
        assert tags["synthpipe.approved_by"] == "Ada Lovelace"
        assert tags["synthpipe.approved_certificate_sha256"] == digest
        assert tags["synthpipe.approval"] == "approved"
        assert tags["synthpipe.approved_at"] == approval["approved_at"]


def refused(capsys, *argv: str) -> str:
    """Run `synthpipe approve ...`, expect exit 1 and one error line; return it."""
    assert main(["approve", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_approve_refuses_a_quarantined_run(store, capsys):
    config, _, quarantined = store
    line = refused(
        capsys, quarantined.mlflow_run_id, "--by", "Ada", "--tracking-uri", config.tracking.uri
    )
    assert "is quarantined" in line and quarantined.mlflow_run_id in line
    tags = MlflowClient(config.tracking.uri).get_run(quarantined.mlflow_run_id).data.tags
    assert "synthpipe.approved_by" not in tags


def test_approve_refuses_a_run_without_a_certificate(store, capsys):
    config, _, _ = store
    client = MlflowClient(config.tracking.uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment).experiment_id
    bare = client.create_run(experiment, tags={"synthpipe.status": "published"}).info.run_id
    line = refused(capsys, bare, "--by", "Ada", "--tracking-uri", config.tracking.uri)
    assert "has no release certificate" in line


def test_approve_refuses_a_certificate_read_elsewhere(store, capsys):
    config, result, _ = store
    line = refused(
        capsys,
        result.mlflow_run_id,
        "--by",
        "Ada",
        "--certificate-sha256",
        "0" * 64,
        "--tracking-uri",
        config.tracking.uri,
    )
    assert "is not the run's" in line


def test_approve_refuses_a_certificate_changed_after_the_run(store, capsys):
    config, result, _ = store
    client = MlflowClient(config.tracking.uri)
    root = unquote(urlsplit(client.get_run(result.mlflow_run_id).info.artifact_uri).path)
    logged = Path(root) / "certificate" / "certificate.json"
    original = logged.read_text()
    try:
        logged.write_text(original.replace('"status": "published"', '"status": "published" '))
        line = refused(
            capsys,
            f"models:/{config.name}/{result.registered_version}",
            "--by",
            "Mallory",
            "--tracking-uri",
            config.tracking.uri,
        )
    finally:
        logged.write_text(original)
    assert "changed after the run wrote it" in line
    tags = client.get_run(result.mlflow_run_id).data.tags
    assert tags.get("synthpipe.approved_by") != "Mallory"


def _strings(value) -> list[str]:
    """Every string in a JSON value, dict keys and the dot-separated parts of keys too."""
    if isinstance(value, dict):
        keys = [part for key in value for part in (key, *key.split("."))]
        return keys + [s for inner in value.values() for s in _strings(inner)]
    if isinstance(value, list):
        return [s for inner in value for s in _strings(inner)]
    return [value] if isinstance(value, str) else []


def test_real_category_values_stay_out_of_the_release(store):
    import pyarrow.parquet as pq

    _, result, _ = store
    run_dir = Path(result.output).parent
    suite = json.loads((run_dir / "expectations" / "suite.json").read_text())
    assert "Real-data metadata" in suite["meta"]["synthpipe"]["real_data_note"]
    assert "Real-data metadata" in (run_dir / "expectations" / "data_docs.html").read_text()
    values = {
        str(v)
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set"
        for v in e["kwargs"]["value_set"]
    }
    assert {"Bachelors", "<=50K"} <= values  # the suite does hold them
    certificate = json.loads((run_dir / "certificate.json").read_text())
    assert "downstream" in certificate["fidelity"]  # whose per-class figures name labels
    assert values.isdisjoint(_strings(certificate))
    cells = re.findall(r">([^<>]+)<", (run_dir / "certificate.html").read_text())
    assert values.isdisjoint(cell.strip() for cell in cells)
    metadata = pq.read_schema(result.output).metadata
    assert values.isdisjoint(v.decode() for v in metadata.values())
