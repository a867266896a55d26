"""Hostile input to `synthpipe sample` and `synthpipe validate`: a tampered model folder in
the MLflow store, a row count past the bound, folders given for output files, damaged
suites and missing tables. Each ends in exactly one `error:` line and exit 1, runs no code
from the model, and writes nothing."""

from __future__ import annotations

import contextlib
import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest

import flows.model
from flows.cli import EXIT_FAILED, SAMPLE_MAX_ROWS, main
from flows.config import parse_config
from flows.model import ALLOW_PICKLE_ENV, GENERATOR_ARTIFACT, SIGNATURE, SynthesizerModel
from flows.tracking import CODE_PATHS
from generators.base import GENERATOR_FILE, MAX_SAMPLE_ROWS
from generators.baselines import UniformGenerator
from generators.data.schema import infer_schema
from generators.errors import ConfigError, DataError
from generators.table.sdv import SDV_FILE
from validation.expectations import build_suite


class _RunsCode:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _frame(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"x": rng.normal(size=rows), "kind": pd.array(rng.choice(["a", "b"], rows), "string")}
    )


def _tampered_folder(folder: Path, marker: Path) -> Path:
    """A `uniform` model whose generator.json now names SDV's gaussian_copula, with a
    pickle beside it that creates `marker` when loaded."""
    frame = _frame()
    UniformGenerator(device="cpu").fit(frame, infer_schema(frame), seed=0).save(folder)
    meta = json.loads((folder / GENERATOR_FILE).read_text())
    meta.update(name="gaussian_copula", params={})
    (folder / GENERATOR_FILE).write_text(json.dumps(meta))
    (folder / SDV_FILE).write_bytes(pickle.dumps(_RunsCode(marker)))
    return folder


@pytest.fixture(scope="module")
def tampered_store(tmp_path_factory):
    """An MLflow store holding a pyfunc model logged as the flow logs it, registered as
    `victim@published`, whose run trained `uniform` (its params say so) and whose generator
    folder was then tampered with. Returns (tracking URI, run id, the marker file the pickle
    would create)."""
    tmp_path = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.MlflowClient().create_experiment(
        "hostile", artifact_location=str(tmp_path / "mlruns")
    )
    folder = _tampered_folder(tmp_path / GENERATOR_ARTIFACT, tmp_path / "ran")
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_params({"generator.name": "uniform", "data.modality": "table"})
        info = mlflow.pyfunc.log_model(
            name="generator",
            python_model=str(Path(flows.model.__file__).with_name("pyfunc_entry.py")),
            artifacts={GENERATOR_ARTIFACT: str(folder)},
            signature=SIGNATURE,
            pip_requirements=[],
            registered_model_name="victim",
            code_paths=CODE_PATHS,
        )
    version = info.registered_model_version
    mlflow.MlflowClient().set_registered_model_alias("victim", "published", str(version))
    yield uri, run.info.run_id, tmp_path / "ran"
    mlflow.set_tracking_uri(previous)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    return errors[0]


@pytest.mark.parametrize(
    "model", ["models:/victim@published", "models:/victim/1", "models:/victim/latest", "runs"]
)
@pytest.mark.parametrize("allow_pickle", [False, True])
def test_sample_refuses_a_tampered_model_without_running_its_code(
    model, allow_pickle, tampered_store, tmp_path, capsys
):
    uri, run_id, marker = tampered_store
    model_uri = f"runs:/{run_id}/generator" if model == "runs" else model
    out = tmp_path / "out.parquet"
    argv = ["sample", model_uri, "--rows", "5", "--output", str(out), "--tracking-uri", uri]
    code = main(argv + (["--allow-pickle"] if allow_pickle else []))
    line = _one_error_line(capsys)
    # The class comes from the run's params, not from the folder, opted in or not.
    assert code == EXIT_FAILED and model_uri in line
    assert "holds a table 'gaussian_copula'" in line and "its run trained a table 'uniform'" in line
    assert not marker.exists() and not out.exists()


def test_sample_refuses_an_unpickling_class_when_no_run_names_one(tampered_store, tmp_path, capsys):
    # A plain folder has no MLflow run to ask: a class that unpickles needs the opt-in.
    marker = tmp_path / "ran"
    model = tmp_path / "model"
    _tampered_folder(model / "artifacts" / GENERATOR_ARTIFACT, marker)
    out = tmp_path / "out.parquet"
    uri = tampered_store[0]
    code = main(["sample", str(model), "--rows", "5", "--output", str(out), "--tracking-uri", uri])
    line = _one_error_line(capsys)
    assert code == EXIT_FAILED and "saved as a pickle" in line and "--allow-pickle" in line
    assert not marker.exists() and not out.exists()


def test_the_pyfunc_wrapper_refuses_pickles_unless_the_process_opts_in(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    folder = _tampered_folder(tmp_path / "model", marker)
    context = SimpleNamespace(artifacts={GENERATOR_ARTIFACT: str(folder)}, model_config={})
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    with pytest.raises(DataError, match="saved as a pickle"):
        SynthesizerModel().load_context(context)
    assert not marker.exists()
    # The switch is the loading process's environment: with it, SDV's loader runs.
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    with contextlib.suppress(Exception):  # whatever SDV makes of the payload, it ran
        SynthesizerModel().load_context(context)
    assert marker.exists()


@pytest.mark.parametrize("rows", [SAMPLE_MAX_ROWS + 1, 10**12])
def test_sample_rows_beyond_the_bound_are_refused_before_any_work(rows, tmp_path, capsys):
    out = tmp_path / "out.parquet"
    code = main(["sample", "models:/absent/1", "--rows", str(rows), "--output", str(out)])
    line = _one_error_line(capsys)
    assert code == EXIT_FAILED and "--rows" in line and f"{SAMPLE_MAX_ROWS:,}" in line
    assert not (tmp_path / "mlflow.db").exists() and not out.exists()


def test_sample_output_pointed_at_a_folder_fails_before_loading(tmp_path, capsys):
    code = main(["sample", "models:/absent/1", "--rows", "5", "--output", str(tmp_path)])
    line = _one_error_line(capsys)
    assert code == EXIT_FAILED and f"--output {tmp_path}: is a folder" in line


@pytest.fixture
def suite_and_table(tmp_path) -> tuple[Path, Path]:
    frame = _frame(200)
    table = tmp_path / "table.parquet"
    frame.to_parquet(table)
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps(build_suite(frame, infer_schema(frame), batch_rows=len(frame))))
    return suite, table


def test_validate_docs_pointed_at_a_folder_is_one_line(suite_and_table, tmp_path, capsys):
    suite, table = suite_and_table
    docs = tmp_path / "docs"
    docs.mkdir()
    code = main(["validate", str(suite), str(table), "--docs", str(docs)])
    line = _one_error_line(capsys)
    assert code == EXIT_FAILED and f"--docs {docs}: is a folder" in line
    assert list(docs.iterdir()) == []


def test_validate_writes_the_docs_page_where_asked(suite_and_table, tmp_path, capsys):
    suite, table = suite_and_table
    docs = tmp_path / "new" / "docs.html"
    assert main(["validate", str(suite), str(table), "--docs", str(docs)]) in (0, 3)
    assert "Computed checks" in docs.read_text()
    assert [p.name for p in docs.parent.iterdir()] == ["docs.html"]  # no temporary left


DAMAGED_SUITES = {
    "unknown expectation": (
        lambda suite: {**suite, "expectations": [{"type": "expect_nothing", "kwargs": {}}]},
        "expectation 0 is not valid",
    ),
    "expectation not a mapping": (
        lambda suite: {**suite, "expectations": ["x"]},
        "expectation 0 is not valid",
    ),
    "expectations not a list": (
        lambda suite: {**suite, "expectations": "x"},
        "list of expectations",
    ),
    "computed checks damaged": (
        lambda suite: {**suite, "meta": {"synthpipe": {"computed_checks": [1]}}},
        "computed_checks is damaged",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_SUITES))
def test_validate_with_a_damaged_suite_is_one_line_naming_it(
    case, suite_and_table, tmp_path, capsys
):
    suite, table = suite_and_table
    damage, words = DAMAGED_SUITES[case]
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(damage(json.loads(suite.read_text()))))
    code = main(["validate", str(damaged), str(table)])
    line = _one_error_line(capsys)
    assert code == EXIT_FAILED and str(damaged) in line and words in line, line


@pytest.mark.parametrize("table", ["absent.parquet", "folder"])
def test_validate_with_a_missing_table_names_the_argument(table, suite_and_table, tmp_path, capsys):
    suite, _ = suite_and_table
    (tmp_path / "folder").mkdir()
    path = tmp_path / table
    code = main(["validate", str(suite), str(path)])
    line = _one_error_line(capsys)
    assert code == EXIT_FAILED and f"{path}: table file" in line and "data.path" not in line


@pytest.mark.parametrize("rows", [MAX_SAMPLE_ROWS + 1, 10**15])
def test_a_run_asking_for_more_rows_than_the_bound_fails_naming_sample_rows(rows, tmp_path):
    with pytest.raises(ConfigError, match=r"sample\.rows: Input should be less than or equal"):
        parse_config({"name": "run", "data": {"path": "t.csv"}, "sample": {"rows": rows}})
    # The bound itself is a valid config, and the Python API refuses past it too.
    config = parse_config(
        {"name": "run", "data": {"path": "t.csv"}, "sample": {"rows": MAX_SAMPLE_ROWS}}
    )
    assert config.sample.rows == MAX_SAMPLE_ROWS
    frame = _frame()
    generator = UniformGenerator(device="cpu").fit(frame, infer_schema(frame), seed=0)
    with pytest.raises(DataError, match=f"at most {MAX_SAMPLE_ROWS:,}"):
        generator.sample(rows, seed=0)


def test_sample_output_as_a_file_url_of_a_folder_fails_before_loading(tmp_path, capsys):
    url = tmp_path.as_uri()
    code = main(["sample", "models:/absent/1", "--rows", "5", "--output", url])
    line = _one_error_line(capsys)
    assert code == EXIT_FAILED and "is a folder" in line
