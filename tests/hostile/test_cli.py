"""A few hostile files through the real CLI and flow (under Prefect's test harness): exit 1,
exactly one `error:` line on stderr naming the file, and nothing on the output path."""

from __future__ import annotations

import pytest

from flows.cli import EXIT_FAILED, main
from tests.flows.conftest import PLAIN_CSV, assert_nothing_written, write_slice_config
from tests.hostile.corpus import CASES, gzip_with_huge_field

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
END_TO_END = ["row with a missing field", "NUL byte in a field", "jsonl nested objects"]


def _run_and_check(tmp_path, data_path, capsys) -> str:
    config = write_slice_config(tmp_path, data_path, data={"path": str(data_path), **PLAIN_CSV})
    code = main(["run", str(config)])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    assert data_path.name in errors[0], errors[0]
    assert "Traceback" not in err
    assert_nothing_written(tmp_path / "outputs")
    return errors[0]


@pytest.mark.parametrize("name", END_TO_END)
def test_hostile_file_fails_the_run_with_one_line(name, tmp_path, capsys):
    case = CASES[name]
    data_folder = tmp_path / "data"
    data_folder.mkdir()
    line = _run_and_check(tmp_path, case.build(data_folder), capsys)
    for words in case.error:
        assert words in line, (words, line)


def test_gigabyte_field_fails_the_run_with_one_line(tmp_path, capsys):
    data_folder = tmp_path / "data"
    data_folder.mkdir()
    path = gzip_with_huge_field(data_folder / "gigabyte.csv.gz", 1 << 30)
    line = _run_and_check(tmp_path, path, capsys)
    assert "MAX_LINE_CHARS" in line


def test_a_tiny_table_fails_the_run_before_training_naming_the_file(tmp_path, capsys):
    # 30 rows: 6 held out, under the privacy checks' 10; stopped at the split, not after fit.
    data_folder = tmp_path / "data"
    data_folder.mkdir()
    path = data_folder / "tiny.csv"
    path.write_text("a,b\n" + "".join(f"{i},{'xy'[i % 2]}\n" for i in range(30)))
    line = _run_and_check(tmp_path, path, capsys)
    assert "30 rows split into 24 for training and 6 held out" in line, line
    assert "privacy.enabled: false" in line
    assert not list((tmp_path / "outputs").rglob("generator.json"))  # nothing was trained
