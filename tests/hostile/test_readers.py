"""Every file of the hostile corpus either reads correctly or fails with one clear line.

Works: the frame has the expected shape and kinds, and a schema inferred from it writes the
frame back to Arrow (what publishing does). Fails: a `DataError` (never another exception)
whose message is one line naming the file and the words the case lists.
"""

from __future__ import annotations

import os
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from generators.data import parquet, tables
from generators.data.schema import infer_schema
from generators.data.tables import read_table
from generators.errors import DataError
from tests.hostile.corpus import CASES, LONG_NAME, OFFSETS, gzip_with_huge_field


def _read(case, tmp_path):
    path = case.build(tmp_path)
    return path, lambda: read_table(str(path), **case.options)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not c.error])
def test_case_reads_with_the_right_shape_and_kinds(name, tmp_path) -> None:
    case = CASES[name]
    _, read = _read(case, tmp_path)
    frame, arrow_schema = read()
    assert frame.shape == case.shape
    schema = infer_schema(frame, arrow_schema=arrow_schema)
    for column, kind in case.kinds.items():
        assert schema[column].kind == kind, column
    table = schema.to_arrow(frame)  # what publishing does with a generator's output
    assert table.num_rows == len(frame) and table.column_names == list(frame.columns)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.error])
def test_case_fails_with_one_line_naming_the_file(name, tmp_path) -> None:
    case = CASES[name]
    path, read = _read(case, tmp_path)
    with pytest.raises(DataError) as caught:
        read()
    message = str(caught.value)
    assert "\n" not in message and len(message) < 600, message
    if case.names_file:
        assert path.name in message or str(path) in message, message
    for words in case.error:
        assert words in message, (words, message)


# -- what "works" means, case by case ------------------------------------------------------


def test_bom_is_not_part_of_the_first_name(tmp_path) -> None:
    frame, _ = read_table(str(CASES["bom"].build(tmp_path)))
    assert list(frame.columns) == ["a", "b"]


def test_thousands_separators_read_as_the_numbers_they_write(tmp_path) -> None:
    frame, arrow_schema = read_table(str(CASES["thousands separators"].build(tmp_path)))
    assert str(frame["amount"].dtype) == "Int64"
    assert frame["amount"].tolist() == [i * 1234 for i in range(20)]


def test_a_single_word_keeps_a_separated_column_as_text(tmp_path) -> None:
    path = tmp_path / "words.csv"
    path.write_text("amount\n" + "".join(f'"{i * 1234:,}"\n' for i in range(20)) + "unknown\n")
    frame, _ = read_table(str(path))
    assert pd.api.types.is_string_dtype(frame["amount"].dtype)
    assert frame["amount"].iloc[2] == "2,468"  # nothing turned into a missing value


def test_nan_text_and_parquet_nan_are_missing_values(tmp_path) -> None:
    frame, _ = read_table(str(CASES["NaN text in a numeric column"].build(tmp_path)))
    assert frame["x"].isna().sum() == 5
    frame, arrow_schema = read_table(str(CASES["parquet NaN and nulls"].build(tmp_path)))
    assert frame["x"].isna().tolist()[:4] == [False, True, True, False]
    column = infer_schema(frame, arrow_schema=arrow_schema)["x"]
    assert (column.minimum, column.maximum) == (1.0, 2.5)


def test_mixed_utc_offsets_keep_their_instants(tmp_path) -> None:
    frame, _ = read_table(str(CASES["dates with mixed UTC offsets"].build(tmp_path)))
    expected = pd.to_datetime(OFFSETS, utc=True)
    assert frame["t"].iloc[:3].tolist() == list(expected)


def test_quoted_separators_and_newlines_stay_in_their_field(tmp_path) -> None:
    frame, _ = read_table(str(CASES["quoted separators and newlines"].build(tmp_path)))
    assert frame["b"].iloc[1] == "x, y\nz1"


def test_long_and_unicode_names_survive_a_parquet_round_trip(tmp_path) -> None:
    for case in ("1,000-character name", "unicode names"):
        frame, arrow_schema = read_table(str(CASES[case].build(tmp_path)))
        table = infer_schema(frame, arrow_schema=arrow_schema).to_arrow(frame)
        parquet.write_parquet_atomic(table, tmp_path / "out.parquet")
        assert pq.read_table(tmp_path / "out.parquet").column_names == list(frame.columns)
    assert LONG_NAME in frame.columns or len(LONG_NAME) == 1000


def test_messages_about_many_columns_stay_short(tmp_path) -> None:
    path = tmp_path / "hollow.csv"
    names = [f"column_{i}_{LONG_NAME}" for i in range(300)]
    path.write_text("a," + ",".join(names) + "\n1" + "," * len(names) + "\n")
    with pytest.raises(DataError, match="entirely empty") as caught:
        read_table(str(path))
    assert len(str(caught.value)) < 2000 and "(290 more)" in str(caught.value)


def test_declared_numeric_text_column_asks_for_na_values(tmp_path) -> None:
    path = tmp_path / "words.csv"
    path.write_text("n\n" + "".join(f"{i}\n" for i in range(30)) + "unknown\n")
    frame, arrow_schema = read_table(str(path))
    with pytest.raises(DataError, match=r"column 'n'.*\['unknown'\].*data\.na_values"):
        infer_schema(frame, {"n": "numeric"}, arrow_schema)
    frame, arrow_schema = read_table(str(path), na_values=["unknown"])
    assert infer_schema(frame, {"n": "numeric"}, arrow_schema)["n"].kind == "numeric"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_a_data_error(tmp_path) -> None:
    path = tmp_path / "locked.csv"
    path.write_text("a\n1\n")
    path.chmod(0)
    try:
        with pytest.raises(DataError, match="locked.csv"):
            read_table(str(path))
    finally:
        path.chmod(0o600)


def test_path_with_a_nul_character_is_a_data_error() -> None:
    with pytest.raises(DataError, match="NUL"):
        read_table("data\x00.csv")


# -- a huge single field -------------------------------------------------------------------


def test_field_over_the_limit_fails_fast_naming_the_limit(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "MAX_FIELD_CHARS", 1000)
    path = tmp_path / "quoted.csv"
    # An opening quote that is never closed swallows the rest of the file into one field.
    path.write_text('a,b\n1,"' + "".join(f"{i},x{i}\n" for i in range(400)))
    with pytest.raises(DataError, match=r"quoted\.csv.*longer than 1,000.*MAX_FIELD_CHARS"):
        read_table(str(path))


def test_line_over_the_limit_fails_fast_naming_the_limit(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "MAX_LINE_CHARS", 10_000)
    path = gzip_with_huge_field(tmp_path / "wide_field.csv.gz", 3 << 20)
    with pytest.raises(DataError, match=r"wide_field\.csv\.gz: line 5 is longer than 10,000"):
        read_table(str(path))
    jsonl = tmp_path / "huge.jsonl"
    jsonl.write_text('{"a": 1}\n{"a": "' + "x" * 20_000 + '"}\n')
    with pytest.raises(DataError, match=r"huge\.jsonl: line 2 is longer than 10,000"):
        read_table(str(jsonl))


def test_fields_under_the_limits_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tables, "MAX_FIELD_CHARS", 1000)
    monkeypatch.setattr(tables, "MAX_LINE_CHARS", 2000)
    path = tmp_path / "ok.csv"
    path.write_text("a,b\n" + "".join(f'{i},"{"y" * 999}"\n' for i in range(3)))
    frame, _ = read_table(str(path))
    assert frame["b"].str.len().tolist() == [999] * 3


def test_a_one_gigabyte_field_fails_in_seconds_without_being_read_whole(tmp_path) -> None:
    """The issue's case for real: 1 GiB of one byte in one field, gzipped to about 1 MB."""
    path = gzip_with_huge_field(tmp_path / "gigabyte.csv.gz", 1 << 30)
    assert path.stat().st_size < 4 << 20
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"gigabyte\.csv\.gz: line 5 is longer than 16,000,000"):
        read_table(str(path))
    # Reading stops at the limit (16 MB of text), not at the end of the field.
    assert time.perf_counter() - start < 60
