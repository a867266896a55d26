"""The CLI: bad input ends in one clear line, a non-zero exit, a `failed` status, no output.

Most cases call `flows.cli.main` in-process under Prefect's test harness (one server for
all); one test runs the installed `synthpipe` command in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.cli import EXIT_FAILED, main
from generators.registry import TABLE_GENERATORS, all_generators
from tests.flows.conftest import PLAIN_CSV, assert_nothing_written


def test_generators_lists_every_registered_name_with_its_modality(capsys):
    assert main(["generators"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    listed = [(line.split()[0], line.split()[1]) for line in lines]
    assert listed == [(cls.name, cls.modality) for cls in all_generators()]
    assert {name for name, modality in listed if modality == "table"} == set(TABLE_GENERATORS)


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


BAD_DATA = {
    # case: (file contents or None for a missing file, config data overrides, words the error names)
    "missing file": (None, {}, ["file not found", "absent.csv"]),
    "not gzip": ("plain text, not gzip", {"format": "csv.gz"}, ["input.csv", "corrupt"]),
    "empty table": ("a,b,c\n", {}, ["no data rows"]),
    "header-less": ("39,1.5,x\n40,2.5,y\n", {}, ["data.columns", "'39'"]),
    "all-null column": (
        "a,b,c\n" + "".join(f"{i},{i},\n" for i in range(30)),
        {},
        ["'c'", "empty", "data.drop"],
    ),
    "duplicate names": (
        "a,b,a\n" + "".join(f"{i},{i},{i}\n" for i in range(30)),
        {},
        ["repeats", "'a'"],
    ),
    "too few rows": ("a,b\n1,2\n3,4\n", {}, ["input.csv", "at least 10"]),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_fails_with_one_line_and_publishes_nothing(
    case, tmp_path, write_config, capsys, prefect_harness
):
    contents, data_overrides, expected = BAD_DATA[case]
    data = tmp_path / ("absent.csv" if contents is None else "input.csv")
    if contents is not None:
        data.write_text(contents)
    config = write_config(data={"path": str(data), **PLAIN_CSV, **data_overrides})
    code = main(["run", str(config), "--json"])
    captured = capsys.readouterr()
    assert code == EXIT_FAILED
    last = json.loads(captured.out.strip().splitlines()[-1])
    assert last["status"] == "failed" and last["output"] is None
    error_line = captured.err.strip().splitlines()[-1]
    assert error_line.startswith("error: ")
    for words in expected:
        assert words in error_line, (words, error_line)
    assert "Traceback" not in captured.err
    assert_nothing_written(tmp_path / "outputs")


BAD_CONFIG = {
    "unknown key": (["--set", "data.pth=x"], "data.pth: unknown key"),
    "unknown generator": (["--set", "generator.name=nope"], "generator.name: unknown generator"),
    "rows zero": (["--set", "sample.rows=0"], "sample.rows"),
    "rows negative": (["--set", "sample.rows=-5"], "sample.rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIG))
def test_bad_config_fails_before_any_work(case, tmp_path, write_config, capsys):
    extra, expected = BAD_CONFIG[case]
    code = main(["run", str(write_config()), *extra, "--json"])
    captured = capsys.readouterr()
    assert code == EXIT_FAILED
    assert json.loads(captured.out.strip().splitlines()[-1])["status"] == "failed"
    assert expected in captured.err.strip().splitlines()[-1]
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "mlflow.db").exists()


def test_sample_rejects_nonpositive_rows_and_unknown_models(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "s.parquet"
    assert main(["sample", "models:/x/1", "--rows", "0", "--output", str(out)]) == EXIT_FAILED
    assert "--rows" in capsys.readouterr().err
    code = main(
        ["sample", "models:/absent/1", "--rows", "5", "--output", str(out), "--tracking-uri", db]
    )
    assert code == EXIT_FAILED
    assert "models:/absent/1: cannot load model" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_installed_command_runs_and_samples_from_the_logged_model(tmp_path, write_config):
    """The real console script, in a fresh process with its own Prefect home, as a user runs it."""
    exe = shutil.which("synthpipe", path=str(Path(sys.executable).parent))
    assert exe, "the synthpipe console script is not installed in this environment"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)

    def synthpipe(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [exe, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600
        )

    done = synthpipe("run", str(write_config()), "--set", "sample.rows=120", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "published" and result["rows"] == 120
    assert result["generator"] == "gaussian_copula" and result["modality"] == "table"
    for key in ("output", "metrics", "mlflow_run_id", "flow_run_id"):
        assert result[key], key
    published = pq.read_table(result["output"])

    # A data error inside the flow: the error line must stay the last line printed, after
    # whatever Prefect logs while its ephemeral server shuts down.
    done = synthpipe("run", str(write_config()), "--set", f"data.path={tmp_path / 'absent.csv'}")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: data.path: file not found")

    sampled = tmp_path / "sampled.parquet"
    done = synthpipe(
        "sample",
        result["model_uri"],
        "--rows",
        "50",
        "--seed",
        "3",
        "--output",
        str(sampled),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--allow-pickle",  # gaussian_copula is SDV's pickle; this store is the test's own
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = pq.read_table(sampled)
    assert table.num_rows == 50
    assert table.schema.remove_metadata() == published.schema.remove_metadata()
