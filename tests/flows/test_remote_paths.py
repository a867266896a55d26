"""data.path and output.dir as fsspec URLs, in the real flow: fsspec's in-process memory://
filesystem stands in for S3 or GCS (the flow's tasks run in threads of this process)."""

from __future__ import annotations

import importlib.util

import fsspec
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from flows.config import load_config, parse_config
from flows.run_folder import run_roots
from flows.synthesize import QUARANTINE_DIR, synthesize
from generators.data.remote import SUCCESS_MARKER
from generators.errors import ConfigError
from tests.flows.conftest import write_slice_config

# Fast: the checks that cost seconds are off; the gate (privacy) stays on.
FAST = {
    "validation": {"expectations": False, "fidelity": False, "plots": False},
    "privacy": {"attacks": False},
}


# -- config: no flow run -----------------------------------------------------------------
def test_a_url_data_path_is_kept_as_given(tmp_path):
    config = write_slice_config(tmp_path, tmp_path / "unused.csv")
    url = "memory://bucket/data/adult_slice.csv"
    assert load_config(config, [f"data.path={url}"]).data.path == url


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ({"dir": "nosuch://bucket/runs"}, "output.dir: unknown protocol 'nosuch://'"),
        ({"dir": "outputs", "local_dir": "/tmp/x"}, "output.local_dir: applies to a URL"),
        ({"dir": "https://me:secret@example.org/runs"}, "output.dir: the URL holds a password"),
    ],
)
def test_bad_output_settings_are_config_errors(output, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_config({"name": "demo", "data": {"path": "t.csv"}, "output": output})


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_a_missing_package_for_the_output_url_fails_before_any_work():
    config = parse_config({"name": "demo", "data": {"path": "t.csv"}, "output": {"dir": "s3://b"}})
    with pytest.raises(ConfigError, match=r"^output\.dir: s3:// needs the s3fs package"):
        run_roots(config)


def test_file_urls_are_local_paths(tmp_path):
    config = parse_config(
        {"name": "demo", "data": {"path": "t.csv"}, "output": {"dir": tmp_path.as_uri()}}
    )
    assert run_roots(config) == (tmp_path / "demo", None)


# -- the real flow ---------------------------------------------------------------------------
@pytest.mark.slow
def test_memory_input_and_output_publish_what_a_local_run_publishes(
    tmp_path, adult_slice, memory, prefect_harness
):
    fs, url = memory
    fs.pipe_file(f"{url}/data/adult_slice.csv", adult_slice.read_bytes())
    (tmp_path / "local").mkdir()
    (tmp_path / "remote").mkdir()
    local = load_config(write_slice_config(tmp_path / "local", adult_slice, **FAST))
    remote = load_config(
        write_slice_config(
            tmp_path / "remote",
            adult_slice,
            data={"path": f"{url}/data/*.csv"},
            output={"dir": f"{url}/runs", "local_dir": str(tmp_path / "staging")},
            **FAST,
        )
    )
    expected = synthesize(local)
    result = synthesize(remote)
    assert result.status == expected.status == "published"
    run_url = f"{url}/runs/{remote.name}/{result.mlflow_run_id}"
    assert result.output == f"{run_url}/synthetic.parquet"
    with fsspec.open(result.output, "rb") as handle:
        assert pq.read_table(handle).equals(pq.read_table(expected.output))
    names = {path.rsplit("/", 1)[1] for path in fs.find(run_url)}
    assert {SUCCESS_MARKER, "synthetic.parquet", "config.yaml", "report.md"} <= names
    # Uploaded, the local copy is gone; MLflow names where the data went.
    staged = tmp_path / "staging" / remote.name
    assert not [path for path in staged.rglob("*") if path.is_file()]
    run = MlflowClient(remote.tracking.uri).get_run(result.mlflow_run_id)
    assert run.data.tags["synthpipe.output"] == result.output


@pytest.mark.slow
def test_a_quarantined_run_uploads_nothing(tmp_path, adult_slice, memory, prefect_harness):
    fs, url = memory
    config = load_config(
        write_slice_config(
            tmp_path,
            adult_slice,
            generator={"name": "copy", "params": {}},
            sample={"rows": 100},
            output={"dir": f"{url}/runs", "local_dir": str(tmp_path / "staging")},
            **FAST,
        )
    )
    state = synthesize(config, return_state=True)
    assert state.is_failed() and "quarantined" in state.message
    result = state.result(raise_on_failure=False)
    assert result.status == "quarantined"
    assert not fs.exists(url) or fs.find(url) == []
    # The rejected rows stay on this machine, for inspection.
    quarantine = tmp_path / "staging" / config.name / QUARANTINE_DIR / result.mlflow_run_id
    assert result.output == str(quarantine / "synthetic.parquet")
    assert pq.read_table(result.output).num_rows == 100


def test_a_run_the_store_refuses_is_kept_locally_and_never_registered(
    tmp_path, adult_slice, memory, prefect_harness, monkeypatch
):
    import mlflow

    import flows.tasks as tasks_module
    from flows.synthesize import UNSENT_DIR
    from generators.errors import DataError

    fs, url = memory

    def refused(folder, target, key, before_marker=None):
        raise DataError(f"{key}: cannot write {target} (AccessDenied); nothing was left")

    monkeypatch.setattr(tasks_module, "upload_folder", refused)
    config = load_config(
        write_slice_config(
            tmp_path,
            adult_slice,
            output={"dir": f"{url}/runs", "local_dir": str(tmp_path / "staging")},
            **FAST,
        )
    )
    with pytest.raises(DataError, match="AccessDenied.*the run is kept at"):
        synthesize(config)
    assert not fs.exists(url) or fs.find(url) == []
    (kept,) = (tmp_path / "staging" / config.name / UNSENT_DIR).iterdir()
    assert pq.read_table(kept / "synthetic.parquet").num_rows == 300
    client = mlflow.MlflowClient(config.tracking.uri)
    assert client.search_registered_models() == []  # no model points at a missing run


def test_the_default_staging_folder_is_private_and_refused_when_not(tmp_path, monkeypatch):
    import os
    import tempfile

    from flows.run_folder import _default_local_dir
    from generators.errors import DataError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = _default_local_dir()
    assert folder.parent == tmp_path and folder.stat().st_mode & 0o777 == 0o700
    assert _default_local_dir() == folder  # the same folder on the next run
    folder.chmod(0o777)  # as if someone made it first, open to all
    with pytest.raises(DataError, match="output.local_dir: .* not a private folder"):
        _default_local_dir()
    os.chmod(folder, 0o700)
