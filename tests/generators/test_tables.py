"""read_table on files written here, the seeded holdout split, and atomic Parquet writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from generators.data import parquet
from generators.data.parquet import write_parquet_atomic
from generators.data.schema import infer_schema
from generators.data.split import split_holdout
from generators.data.tables import MIN_ROWS, read_table
from generators.errors import DataError


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# -- read_table: CSV -----------------------------------------------------------------------


def test_csv_with_header(tmp_path) -> None:
    path = _write(
        tmp_path / "people.csv",
        "name,age,score,joined,member\n"
        "ann,31,1.5,2020-01-02,true\n"
        "bob,,2.25,2021-07-30,false\n"
        "cyd,45,,2019-11-11,\n",
    )
    frame, arrow_schema = read_table(str(path))
    assert list(frame.columns) == ["name", "age", "score", "joined", "member"]
    assert {k: str(v) for k, v in frame.dtypes.items()} == {
        "name": "string",
        "age": "Int64",
        "score": "Float64",
        "joined": "datetime64[ns]",
        "member": "boolean",
    }
    assert frame["age"].isna().tolist() == [False, True, False]
    assert frame["joined"].iloc[1] == pd.Timestamp("2021-07-30")
    assert arrow_schema.names == list(frame.columns)
    assert arrow_schema.field("age").type == pa.int64()


def test_headerless_csv_without_columns_asks_for_data_columns(tmp_path) -> None:
    path = _write(tmp_path / "raw.csv", "39,State-gov,77516\n50,Private,83311\n")
    with pytest.raises(DataError, match=r"data\.columns"):
        read_table(str(path))


def test_headerless_csv_with_columns(tmp_path) -> None:
    path = _write(tmp_path / "raw.csv", "39,State-gov,77516\n50,Private,83311\n")
    frame, _ = read_table(str(path), columns=["age", "workclass", "fnlwgt"])
    assert list(frame.columns) == ["age", "workclass", "fnlwgt"]
    assert len(frame) == 2  # the first row is data, not a header
    assert frame["age"].tolist() == [39, 50]
    assert frame["workclass"].tolist() == ["State-gov", "Private"]


def test_columns_count_mismatch_is_a_data_error(tmp_path) -> None:
    path = _write(tmp_path / "raw.csv", "39,State-gov,77516\n50,Private,83311\n")
    with pytest.raises(DataError, match=r"names 2 columns but the file has 3"):
        read_table(str(path), columns=["age", "workclass"])


def test_duplicate_header_names_are_a_data_error_naming_them(tmp_path) -> None:
    path = _write(tmp_path / "dup.csv", "a,total,b,total\n1,2,3,4\n5,6,7,8\n")
    with pytest.raises(DataError, match=r"repeats column name\(s\) \['total'\]"):
        read_table(str(path))


def test_duplicate_names_in_data_columns_are_a_data_error(tmp_path) -> None:
    path = _write(tmp_path / "raw.csv", "1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match=r"data\.columns repeats.*'x'"):
        read_table(str(path), columns=["x", "y", "x"])


def test_empty_file_is_a_data_error(tmp_path) -> None:
    path = _write(tmp_path / "empty.csv", "")
    with pytest.raises(DataError, match="empty"):
        read_table(str(path))


def test_blank_lines_only_is_a_data_error(tmp_path) -> None:
    path = _write(tmp_path / "blank.csv", "\n  \n\n")
    with pytest.raises(DataError, match="empty"):
        read_table(str(path))


def test_header_only_is_a_data_error(tmp_path) -> None:
    path = _write(tmp_path / "header.csv", "a,b,c\n")
    with pytest.raises(DataError, match="no data rows"):
        read_table(str(path))


def test_all_null_column_is_a_data_error_naming_it(tmp_path) -> None:
    path = _write(tmp_path / "gap.csv", "a,nothing,c\n1,,x\n2,,y\n3,,z\n")
    with pytest.raises(DataError, match=r"\['nothing'\] are entirely empty.*data\.drop"):
        read_table(str(path))


def test_all_null_column_can_be_dropped(tmp_path) -> None:
    path = _write(tmp_path / "gap.csv", "a,nothing,c\n1,,x\n2,,y\n3,,z\n")
    frame, arrow_schema = read_table(str(path), drop=["nothing"])
    assert list(frame.columns) == ["a", "c"]
    assert arrow_schema.names == ["a", "c"]


def test_missing_file_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_table(str(tmp_path / "nope.csv"))


def test_glob_matching_nothing_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="no file matches"):
        read_table(str(tmp_path / "*.csv"))


def test_glob_of_two_csvs_concatenates_in_name_order(tmp_path) -> None:
    _write(tmp_path / "part-2.csv", "k,v\nc,3\nd,4\n")
    _write(tmp_path / "part-1.csv", "k,v\na,1\nb,2\n")
    frame, _ = read_table(str(tmp_path / "part-*.csv"))
    assert frame["k"].tolist() == ["a", "b", "c", "d"]
    assert frame["v"].tolist() == [1, 2, 3, 4]
    assert frame.index.equals(pd.RangeIndex(4))


def test_glob_with_differing_headers_is_a_data_error(tmp_path) -> None:
    _write(tmp_path / "part-1.csv", "k,v\na,1\n")
    _write(tmp_path / "part-2.csv", "k,w\nb,2\n")
    with pytest.raises(DataError, match="share one header"):
        read_table(str(tmp_path / "part-*.csv"))


def test_adult_style_separator_and_na_values(tmp_path) -> None:
    path = _write(
        tmp_path / "adult.data",
        "39, State-gov, 77516, Bachelors\n50, ?, 83311, HS-grad\n38, Private, ?, HS-grad\n",
    )
    frame, _ = read_table(
        str(path),
        columns=["age", "workclass", "fnlwgt", "education"],
        separator=", ",
        na_values=["?"],
    )
    assert frame["workclass"].tolist()[0] == "State-gov"  # no leading space
    assert frame["workclass"].isna().tolist() == [False, True, False]
    assert frame["fnlwgt"].isna().tolist() == [False, False, True]
    assert str(frame["fnlwgt"].dtype) == "Int64"  # "?" did not turn the column into text
    assert frame["education"].tolist() == ["Bachelors", "HS-grad", "HS-grad"]


def test_unknown_suffix_asks_for_data_format(tmp_path) -> None:
    path = _write(tmp_path / "table.xyz", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"data\.format"):
        read_table(str(path))
    frame, _ = read_table(str(path), format="csv")
    assert frame["b"].tolist() == [2]


def test_non_utf8_csv_asks_for_data_encoding(tmp_path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("city,n\nK\u00f6ln,1\nM\u00e1laga,2\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"data\.encoding"):
        read_table(str(path))
    frame, _ = read_table(str(path), encoding="latin-1")
    assert frame["city"].tolist() == ["K\u00f6ln", "M\u00e1laga"]


def test_non_utf8_header_asks_for_data_encoding(tmp_path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("stra\u00dfe,n\na,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"data\.encoding"):
        read_table(str(path))


def test_utf8_bom_is_not_part_of_the_first_name(tmp_path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa,b\n1,2\n".encode())
    frame, _ = read_table(str(path))
    assert list(frame.columns) == ["a", "b"]


# -- read_table: Parquet and JSONL ---------------------------------------------------------


def test_parquet_keeps_its_arrow_types(tmp_path) -> None:
    arrow_schema = pa.schema(
        [("n", pa.int32()), ("t", pa.timestamp("ms")), ("x", pa.float32()), ("s", pa.string())]
    )
    table = pa.table(
        {
            "n": pa.array([3, 1, 2, 7], pa.int32()),
            "t": pa.array(
                [1_577_836_800_000, 1_577_923_200_000, None, 1_578_096_000_000], pa.timestamp("ms")
            ),
            "x": pa.array([0.5, None, 1.5, 2.0], pa.float32()),
            "s": pa.array(["a", "b", None, "a"]),
        },
        schema=arrow_schema,
    )
    pq.write_table(table, tmp_path / "t.parquet")
    frame, read_schema = read_table(str(tmp_path / "t.parquet"))
    assert read_schema.equals(arrow_schema)
    assert frame["n"].tolist() == [3, 1, 2, 7]
    assert frame["t"].iloc[1] == pd.Timestamp("2020-01-02")
    # ... and a schema built from it writes the same types back.
    schema = infer_schema(frame, arrow_schema=read_schema)
    assert schema.to_arrow(frame).equals(table)


def test_parquet_int_column_with_nulls_round_trips_synthetic_values(tmp_path) -> None:
    """A nullable Parquet int column must stay an integer column, so that whatever a
    generator produces for it is rounded before being written back as int32."""
    table = pa.table({"n": pa.array([1, None, 3, 9], pa.int32())})
    pq.write_table(table, tmp_path / "n.parquet")
    frame, arrow_schema = read_table(str(tmp_path / "n.parquet"))
    schema = infer_schema(frame, arrow_schema=arrow_schema)
    assert schema["n"].is_integer, f"nullable int32 was read as {schema['n'].dtype}"
    written = schema.to_arrow(pd.DataFrame({"n": [1.4, None, 8.6, 2.5000001]}))
    assert written.schema.field("n").type == pa.int32()
    assert written.column("n").to_pylist() == [1, None, 9, 3]


def test_parquet_dictionary_column_reads_as_strings(tmp_path) -> None:
    table = pa.table({"c": pa.array(["a", "b", "a", None]).dictionary_encode()})
    pq.write_table(table, tmp_path / "d.parquet")
    frame, arrow_schema = read_table(str(tmp_path / "d.parquet"))
    assert str(frame["c"].dtype) == "string"
    assert infer_schema(frame, arrow_schema=arrow_schema)["c"].kind == "categorical"


def test_jsonl(tmp_path) -> None:
    path = _write(
        tmp_path / "rows.jsonl",
        '{"id": 1, "city": "Oslo", "temp": 3.5, "day": "2020-01-01", "rain": true}\n'
        '{"id": 2, "city": "Rome", "temp": null, "day": "2020-01-02", "rain": false}\n'
        '{"id": 3, "city": null, "temp": 18.0, "day": "2020-01-03", "rain": true}\n',
    )
    frame, arrow_schema = read_table(str(path))
    assert list(frame.columns) == ["id", "city", "temp", "day", "rain"]
    assert {k: str(v) for k, v in frame.dtypes.items()} == {
        "id": "Int64",
        "city": "string",
        "temp": "Float64",
        "day": "datetime64[ns]",
        "rain": "boolean",
    }
    assert frame["temp"].isna().tolist() == [False, True, False]
    assert frame["city"].isna().tolist() == [False, False, True]
    assert arrow_schema.field("day").type == pa.timestamp("ns")


def test_corrupt_parquet_is_a_data_error(tmp_path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(DataError, match="cannot read as parquet"):
        read_table(str(path))


# -- split_holdout -------------------------------------------------------------------------


def test_split_is_seeded(mixed_frame: pd.DataFrame) -> None:
    train_a, holdout_a = split_holdout(mixed_frame, 0.25, seed=3)
    train_b, holdout_b = split_holdout(mixed_frame, 0.25, seed=3)
    _, holdout_c = split_holdout(mixed_frame, 0.25, seed=4)
    pd.testing.assert_frame_equal(train_a, train_b)
    pd.testing.assert_frame_equal(holdout_a, holdout_b)
    assert set(holdout_a["customer_id"]) != set(holdout_c["customer_id"])


@pytest.mark.parametrize("target", [None, "region", "member"])
def test_split_is_disjoint_and_complete(mixed_frame: pd.DataFrame, target) -> None:
    train, holdout = split_holdout(mixed_frame, 0.2, seed=11, target=target)
    train_ids, holdout_ids = set(train["customer_id"]), set(holdout["customer_id"])
    assert not train_ids & holdout_ids
    assert train_ids | holdout_ids == set(mixed_frame["customer_id"])
    assert len(train) + len(holdout) == len(mixed_frame)
    assert train.index.equals(pd.RangeIndex(len(train)))
    assert holdout.index.equals(pd.RangeIndex(len(holdout)))
    # Rows are whole rows of the input, not recombined.
    by_id = mixed_frame.set_index("customer_id")
    pd.testing.assert_frame_equal(
        holdout.set_index("customer_id"), by_id.loc[holdout["customer_id"]]
    )


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.33, 0.5])
@pytest.mark.parametrize("target", [None, "region"])
def test_split_respects_fraction_within_one_row_per_class(
    mixed_frame: pd.DataFrame, fraction: float, target
) -> None:
    _, holdout = split_holdout(mixed_frame, fraction, seed=5, target=target)
    classes = 1 if target is None else mixed_frame[target].nunique(dropna=False)
    assert abs(len(holdout) - fraction * len(mixed_frame)) <= classes


@pytest.mark.parametrize("fraction", [0.15, 0.3])
def test_stratified_split_keeps_class_proportions(
    mixed_frame: pd.DataFrame, fraction: float
) -> None:
    target = "region"
    counts = mixed_frame[target].astype(object).fillna("<NA>").value_counts()
    _, holdout = split_holdout(mixed_frame, fraction, seed=8, target=target)
    held = holdout[target].astype(object).fillna("<NA>").value_counts()
    n, h, k = len(mixed_frame), len(holdout), len(counts)
    for level, n_c in counts.items():
        h_c = held.get(level, 0)
        # Each class contributes round(fraction * n_c) rows: off by at most half a row ...
        assert abs(h_c - fraction * n_c) <= 0.5, level
        # ... so its share of the holdout is off from its share of the table by at most
        # |n*e_c - n_c*E| / (n*h) with |e_c| <= 1/2 and |E| <= k/2 (derived from the counts).
        bound = (0.5 * n + 0.5 * k * n_c) / (n * h)
        assert abs(h_c / h - n_c / n) <= bound, level


def test_unstratified_split_can_unbalance_what_stratified_keeps() -> None:
    """The stratified check above must be able to fail: a rare class of 5 in 100 rows
    lands in a 20-row plain holdout 0..5 times, but always exactly once when stratified."""
    frame = pd.DataFrame({"y": ["rare"] * 5 + ["common"] * 95, "x": np.arange(100)})
    plain = {int((split_holdout(frame, 0.2, seed=s)[1]["y"] == "rare").sum()) for s in range(30)}
    stratified = {
        int((split_holdout(frame, 0.2, seed=s, target="y")[1]["y"] == "rare").sum())
        for s in range(30)
    }
    assert stratified == {1}
    assert len(plain) > 1


def test_split_needs_min_rows(mixed_frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=f"at least {MIN_ROWS}"):
        split_holdout(mixed_frame.head(MIN_ROWS - 1), 0.2, seed=0)
    train, holdout = split_holdout(mixed_frame.head(MIN_ROWS), 0.2, seed=0)
    assert len(train) + len(holdout) == MIN_ROWS and len(holdout) >= 1 and len(train) >= 1


def test_split_unknown_target_is_a_data_error(mixed_frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="'label'"):
        split_holdout(mixed_frame, 0.2, seed=0, target="label")


# -- write_parquet_atomic ------------------------------------------------------------------


def test_write_parquet_atomic_round_trips_data_and_metadata(tmp_path) -> None:
    table = pa.table({"a": pa.array([1, 2, 3], pa.int32()), "b": ["x", "y", None]})
    path = write_parquet_atomic(
        table, tmp_path / "out" / "t.parquet", {"synthpipe.run": "abc123", "rows": 3}
    )
    assert path == tmp_path / "out" / "t.parquet"
    read = pq.read_table(path)
    assert read.equals(table)  # equals ignores metadata
    metadata = read.schema.metadata
    assert metadata[b"synthpipe.run"] == b"abc123"
    assert metadata[b"rows"] == b"3"
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.parquet"]


@pytest.mark.parametrize("existing", [False, True])
def test_failed_write_leaves_no_file_and_no_temporary(
    tmp_path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    destination = tmp_path / "t.parquet"
    if existing:
        pq.write_table(pa.table({"old": [1]}), destination)
    written_to = []

    def half_write(table, where, *args, **kwargs):
        written_to.append(where)
        with open(where, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(parquet.pq, "write_table", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomic(pa.table({"a": [1, 2]}), destination)
    assert written_to and written_to[0] != destination  # it wrote beside, not onto, the target
    if existing:
        assert pq.read_table(destination).column_names == ["old"]  # old file untouched
        assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
    else:
        assert not destination.exists()
        assert list(tmp_path.iterdir()) == []


def test_infinite_values_are_a_data_error_naming_the_column(tmp_path) -> None:
    path = tmp_path / "inf.csv"
    path.write_text("v,w\n" + "".join(f"{'inf' if i == 3 else i},{i}\n" for i in range(20)))
    with pytest.raises(DataError, match=r"\['v'\] hold infinite values.*data.na_values"):
        read_table(str(path))
    frame, _ = read_table(str(path), na_values=["inf", "-inf"])
    assert frame["v"].isna().sum() == 1


def test_timezone_aware_parquet_round_trips_through_conform(tmp_path) -> None:
    path = tmp_path / "tz.parquet"
    stamps = pd.date_range("2021-03-01", periods=30, freq="h", tz="Europe/Paris")
    pd.DataFrame({"t": stamps, "v": np.arange(30)}).to_parquet(path)
    frame, arrow_schema = read_table(str(path))
    schema = infer_schema(frame, arrow_schema=arrow_schema)
    # Generators may hand back naive UTC datetimes (SDV does): conform restores the zone.
    naive_utc = frame.assign(t=frame["t"].dt.tz_convert("UTC").dt.tz_localize(None))
    table = schema.to_arrow(naive_utc)
    assert table.schema.field("t").type == arrow_schema.field("t").type
    assert table.column("t").to_pandas().equals(frame["t"])


def test_dates_in_mixed_formats_are_parsed(tmp_path) -> None:
    path = tmp_path / "dates.csv"
    values = ["2020-01-15", "Feb 3 2020", "2020/03/04 10:00"] * 10
    path.write_text("d\n" + "\n".join(values) + "\n")
    frame, _ = read_table(str(path))
    assert pd.api.types.is_datetime64_any_dtype(frame["d"].dtype)
    assert frame["d"].iloc[1] == pd.Timestamp("2020-02-03")


def test_microsecond_timestamps_and_decimals_survive_generation(tmp_path) -> None:
    import decimal

    from generators import make_generator

    rng = np.random.default_rng(0)
    stamps = pd.date_range("2021-01-01", periods=120, freq="h").values.astype("datetime64[us]")
    amounts = [decimal.Decimal(f"{v:.2f}") for v in rng.uniform(0, 100, 120)]
    table = pa.table({"ts": pa.array(stamps), "amount": pa.array(amounts, pa.decimal128(10, 2))})
    path = tmp_path / "units.parquet"
    pq.write_table(table, path)
    frame, arrow_schema = read_table(str(path))
    schema = infer_schema(frame, arrow_schema=arrow_schema)
    generator = make_generator("gaussian_copula", {"default_distribution": "norm"})
    synthetic = generator.fit(frame, schema, seed=0).sample(200, seed=0)
    out = schema.to_arrow(synthetic)
    assert out.schema == table.schema
    moments = out.column("ts").to_pandas()
    # Read as nanoseconds anywhere, microseconds would all land on one clipped instant.
    assert moments.nunique() > 100
    assert moments.min() >= stamps.min() and moments.max() <= stamps.max()


@pytest.mark.parametrize("name", ["CustomerID", "userId", "patient_id", "order-key"])
def test_identifier_names_in_any_case_style(name) -> None:
    frame = pd.DataFrame({name: pd.array(np.arange(50) + 7, dtype="Int64")})
    assert infer_schema(frame)[name].kind == "id"


def test_times_of_day_stay_text_and_dates_with_a_stray_value_are_refused(tmp_path) -> None:
    path = tmp_path / "times.csv"
    rows = [f"{h % 24:02d}:15,2020-01-{1 + h % 28:02d}" for h in range(40)]
    rows[5] = "07:15,not a date"
    path.write_text("at,day\n" + "\n".join(rows) + "\n")
    # "not a date" would become NaT, or (as it was) the column silently categories: refused,
    # naming the column and the value.
    with pytest.raises(DataError, match=r"column 'day' holds dates but 1 of 40.*'not a date'"):
        read_table(str(path))
    frame, _ = read_table(str(path), na_values=["not a date"])
    # "07:15" would otherwise be dated to the day of the run.
    assert pd.api.types.is_string_dtype(frame["at"].dtype)
    assert pd.api.types.is_datetime64_any_dtype(frame["day"].dtype)
    assert frame["day"].isna().sum() == 1


def test_data_drop_naming_a_missing_column_is_one_message_for_every_reader(tmp_path) -> None:
    from generators.data.tables import check_drop

    with pytest.raises(DataError, match=r"data.drop: columns \['nope'\] are not in t.csv; columns"):
        check_drop(["a", "nope"], ["a", "b"], "t.csv")
    check_drop(["a"], ["a", "b"], "t.csv")  # a column the table has is fine
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match=r"data.drop: columns \['nope'\] are not in"):
        read_table(str(path), drop=["nope"])
