"""Schema inference, datetime parsing, `conform`, Arrow types and (de)serialisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from generators.data.schema import (
    ID_MIN_ROWS,
    Schema,
    infer_schema,
    normalize_dtypes,
    parse_datetime_strings,
)
from generators.errors import DataError

# -- inference -----------------------------------------------------------------------------


def test_fixture_columns_get_the_expected_kinds(mixed_schema: Schema) -> None:
    kinds = {column.name: column.kind for column in mixed_schema.columns}
    assert kinds == {
        "customer_id": "id",
        "age": "numeric",
        "income": "numeric",
        "region": "categorical",
        "member": "boolean",
        "signup": "datetime",
    }
    assert mixed_schema.names == list(kinds)  # the input's column order


def test_numeric_columns_record_dtype_and_seen_range(mixed_frame: pd.DataFrame) -> None:
    schema = infer_schema(mixed_frame)
    age, income = schema["age"], schema["income"]
    assert (age.dtype, income.dtype) == ("Int64", "Float64")
    assert age.is_integer and not income.is_integer
    assert age.minimum == float(mixed_frame["age"].min())
    assert age.maximum == float(mixed_frame["age"].max())
    assert income.minimum == float(mixed_frame["income"].min())
    assert income.maximum == float(mixed_frame["income"].max())


def test_categorical_records_sorted_categories_without_missing(mixed_frame: pd.DataFrame) -> None:
    region = infer_schema(mixed_frame)["region"]
    assert mixed_frame["region"].isna().any()  # precondition: NA must not become a category
    assert region.categories == tuple(sorted(mixed_frame["region"].dropna().unique()))


def test_datetime_records_iso_range(mixed_frame: pd.DataFrame) -> None:
    signup = infer_schema(mixed_frame)["signup"]
    assert signup.dtype == "datetime64[ns]"
    assert pd.Timestamp(signup.minimum) == mixed_frame["signup"].min()
    assert pd.Timestamp(signup.maximum) == mixed_frame["signup"].max()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("customer_id", "id"),
        ("uuid", "id"),
        ("order-key", "id"),
        ("Account_GUID", "id"),
        ("amount", "numeric"),  # unique ints, but the name does not look like an identifier
        ("idle", "numeric"),  # "id" must be a whole name part, not a prefix
    ],
)
def test_unique_integers_are_ids_only_when_named_like_one(name: str, expected: str) -> None:
    frame = pd.DataFrame({name: pd.array(np.arange(50) * 7 + 3, dtype="Int64")})
    assert infer_schema(frame)[name].kind == expected


def test_unique_floats_named_id_stay_numeric() -> None:
    frame = pd.DataFrame({"score_id": pd.array(np.linspace(0.5, 9.5, 40), dtype="Float64")})
    assert infer_schema(frame)["score_id"].kind == "numeric"


def test_integer_id_with_repeats_is_numeric() -> None:
    frame = pd.DataFrame({"store_id": pd.array(np.arange(60) % 30, dtype="Int64")})
    assert infer_schema(frame)["store_id"].kind == "numeric"


def test_unique_short_strings_are_ids_from_id_min_rows() -> None:
    codes = [f"C{i:04d}" for i in range(ID_MIN_ROWS)]
    enough = pd.DataFrame({"code": pd.array(codes, dtype="string")})
    too_few = pd.DataFrame({"code": pd.array(codes[: ID_MIN_ROWS - 1], dtype="string")})
    assert infer_schema(enough)["code"].kind == "id"
    assert infer_schema(too_few)["code"].kind == "categorical"


def test_long_distinct_strings_are_text() -> None:
    rng = np.random.default_rng(1)
    words = ["alpha", "beta", "gamma", "delta", "echo", "fox", "golf", "hotel"]
    sentences = [" ".join(rng.choice(words, size=6)) + f" {i}" for i in range(30)]
    # Single "words" of 45 characters: long by characters, not by words.
    long_tokens = [f"{'x' * 40}{i:05d}" for i in range(30)]
    frame = pd.DataFrame(
        {
            "comment": pd.array(sentences, dtype="string"),
            "blob": pd.array(long_tokens, dtype="string"),
        }
    )
    schema = infer_schema(frame)
    assert schema["comment"].kind == "text"
    assert schema["blob"].kind == "text"


def test_long_but_repeated_strings_are_categorical() -> None:
    labels = ["the customer asked for a refund today", "the customer asked for nothing at all"]
    frame = pd.DataFrame({"reason": pd.array(labels * 20, dtype="string")})
    assert infer_schema(frame)["reason"].kind == "categorical"


def test_overrides_win(mixed_frame: pd.DataFrame) -> None:
    schema = infer_schema(mixed_frame, {"customer_id": "numeric", "age": "categorical"})
    assert schema["customer_id"].kind == "numeric"
    assert schema["customer_id"].minimum == float(mixed_frame["customer_id"].min())
    assert schema["age"].kind == "categorical"
    expected = tuple(sorted(str(v) for v in mixed_frame["age"].dropna().unique()))
    assert schema["age"].categories == expected
    assert schema["income"].kind == "numeric"  # untouched columns are still inferred


def test_unknown_override_column_is_a_data_error_naming_it(mixed_frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no_such_column"):
        infer_schema(mixed_frame, {"no_such_column": "numeric"})


def test_declared_numeric_on_strings_is_a_data_error(mixed_frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"'region' is declared numeric.*data\.schema\.region"):
        infer_schema(mixed_frame, {"region": "numeric"})


def test_declared_datetime_on_non_dates_is_a_data_error(mixed_frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"'region' is declared datetime"):
        infer_schema(mixed_frame, {"region": "datetime"})


def test_normalize_dtypes_moves_numpy_dtypes_to_nullable_ones() -> None:
    frame = pd.DataFrame(
        {
            "i": np.array([1, 2, 3], dtype="int32"),
            "u": np.array([1, 2, 3], dtype="uint16"),
            "f": [1.0, np.nan, 3.0],
            "whole": [1.0, 2.0, 3.0],  # a float column of whole numbers stays a float column
            "s": ["a", None, "c"],
            "b": [True, False, True],
            "c": pd.Categorical(["x", "y", "x"]),
        }
    )
    out = normalize_dtypes(frame)
    assert {name: str(dtype) for name, dtype in out.dtypes.items()} == {
        "i": "Int32",
        "u": "UInt16",
        "f": "Float64",
        "whole": "Float64",
        "s": "string",
        "b": "boolean",
        "c": "string",
    }
    assert out["f"].isna().tolist() == [False, True, False]


# -- parse_datetime_strings ----------------------------------------------------------------


def test_iso_strings_become_datetimes_and_numbers_do_not() -> None:
    frame = pd.DataFrame(
        {
            "day": pd.array(["2020-01-05", "2021-03-17", None, "2019-12-31"], dtype="string"),
            "stamp": pd.array(
                [
                    "2020-01-05T10:11:12",
                    "2020-01-06T00:00:00",
                    "2020-02-01T23:59:59",
                    "2020-03-01T08:00:00",
                ],
                dtype="string",
            ),
            "year": pd.array(["2019", "2020", "2021", "2018"], dtype="string"),
            "small": pd.array(["17", "4", "12.5", "9"], dtype="string"),
            "word": pd.array(["red", "green", "blue", "red"], dtype="string"),
            "number": pd.array([1, 2, 3, 4], dtype="Int64"),
        }
    )
    out = parse_datetime_strings(frame)
    assert pd.api.types.is_datetime64_any_dtype(out["day"].dtype)
    assert out["day"].tolist()[:2] == [pd.Timestamp("2020-01-05"), pd.Timestamp("2021-03-17")]
    assert pd.isna(out["day"].iloc[2])
    assert out["stamp"].iloc[0] == pd.Timestamp("2020-01-05 10:11:12")
    for name in ("year", "small", "word", "number"):
        assert out[name].dtype == frame[name].dtype, name
        assert out[name].equals(frame[name]), name
    # The input is not modified.
    assert frame["day"].dtype == "string"


def test_mostly_unparseable_strings_stay_strings() -> None:
    values = ["2020-01-05"] * 8 + ["soon", "later"]  # 80% parse, below the 95% threshold
    frame = pd.DataFrame({"when": pd.array(values, dtype="string")})
    assert parse_datetime_strings(frame)["when"].dtype == "string"


# -- conform -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", ["Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"]
)
def test_conform_rounds_integers_and_clips_to_seen_range(dtype: str) -> None:
    frame = pd.DataFrame({"x": pd.array([5, 30, 90], dtype=dtype)})
    schema = infer_schema(frame)
    assert schema["x"].dtype == dtype
    generated = pd.DataFrame({"x": [33.6, 33.4, 4.2, 120.0, np.nan, 89.7]})
    out = schema.conform(generated)
    assert out["x"].dtype == dtype
    assert out["x"].tolist()[:4] == [34, 33, 5, 90]
    assert pd.isna(out["x"].iloc[4])
    assert out["x"].iloc[5] == 90


def test_conform_clips_floats_without_rounding(mixed_schema: Schema) -> None:
    income = mixed_schema["income"]
    generated = pd.DataFrame({"income": [income.minimum - 500.0, 2500.25, income.maximum + 1]})
    out = Schema((income,), mixed_schema.arrow_schema).conform(generated)
    assert out["income"].dtype == "Float64"
    assert out["income"].tolist() == [income.minimum, 2500.25, income.maximum]


def test_conform_turns_unseen_categories_into_missing(mixed_schema: Schema) -> None:
    region = mixed_schema["region"]
    generated = pd.DataFrame({"region": ["north", "mars", None, "west", "North"]})
    out = Schema((region,), mixed_schema.arrow_schema).conform(generated)
    assert out["region"].dtype == "string"
    assert out["region"].isna().tolist() == [False, True, True, False, True]
    assert out["region"].dropna().tolist() == ["north", "west"]


def test_conform_parses_and_clips_datetimes(mixed_schema: Schema) -> None:
    signup = mixed_schema["signup"]
    low, high = pd.Timestamp(signup.minimum), pd.Timestamp(signup.maximum)
    generated = pd.DataFrame({"signup": ["1990-01-01", "2021-06-15", None, "2099-01-01"]})
    out = Schema((signup,), mixed_schema.arrow_schema).conform(generated)
    assert out["signup"].dtype == "datetime64[ns]"
    assert out["signup"].iloc[0] == low
    assert out["signup"].iloc[1] == pd.Timestamp("2021-06-15")
    assert pd.isna(out["signup"].iloc[2])
    assert out["signup"].iloc[3] == high


def test_conform_casts_model_booleans(mixed_schema: Schema) -> None:
    member = mixed_schema["member"]
    generated = pd.DataFrame({"member": np.array([True, False, np.nan], dtype=object)})
    out = Schema((member,), mixed_schema.arrow_schema).conform(generated)
    assert out["member"].dtype == "boolean"
    assert out["member"].tolist()[:2] == [True, False] and pd.isna(out["member"].iloc[2])


def test_conform_restores_column_order_dtypes_and_index(
    mixed_frame: pd.DataFrame, mixed_schema: Schema
) -> None:
    # What a model hands back: numpy floats and object strings (ids as plain floats), in
    # another column order, with an extra column and a non-default index.
    model = mixed_schema.to_model_frame(mixed_frame.assign(customer_id=np.nan))
    model["customer_id"] = mixed_frame["customer_id"].astype("float64")
    shuffled = model[list(reversed(model.columns))].assign(extra=1)
    shuffled.index = np.arange(len(shuffled)) * 3 + 7
    assert list(shuffled.columns) != mixed_schema.names  # precondition
    out = mixed_schema.conform(shuffled)
    assert list(out.columns) == mixed_schema.names
    assert [str(t) for t in out.dtypes] == [c.dtype for c in mixed_schema.columns]
    assert out.index.equals(pd.RangeIndex(len(mixed_frame)))
    pd.testing.assert_frame_equal(out, mixed_frame.reset_index(drop=True))


def test_conform_missing_column_is_a_data_error(
    mixed_frame: pd.DataFrame, mixed_schema: Schema
) -> None:
    with pytest.raises(DataError, match="income"):
        mixed_schema.conform(mixed_frame.drop(columns=["income"]))


# -- Arrow types ---------------------------------------------------------------------------


def test_to_arrow_keeps_the_input_arrow_types() -> None:
    arrow_schema = pa.schema(
        [
            ("count", pa.int32()),
            ("small", pa.int16()),
            ("ratio", pa.float32()),
            ("when", pa.timestamp("ms")),
            ("label", pa.string()),
            ("flag", pa.bool_()),
        ]
    )
    source = pa.table(
        {
            # No nulls here: Parquet ints with nulls are covered in test_tables.py.
            "count": pa.array([1, 5, 4, 9], pa.int32()),
            "small": pa.array([-3, 0, 2, 7], pa.int16()),
            "ratio": pa.array([0.5, 0.25, 1.0, None], pa.float32()),
            "when": pa.array(
                [1_577_836_800_000, None, 1_578_009_600_000, 1_578_096_000_000], pa.timestamp("ms")
            ),
            "label": pa.array(["a", "b", None, "a"]),
            "flag": pa.array([True, False, None, True]),
        },
        schema=arrow_schema,
    )
    frame = normalize_dtypes(source.to_pandas())
    schema = infer_schema(frame, arrow_schema=source.schema)
    generated = pd.DataFrame(
        {
            "count": [2.4, 8.6, np.nan, 100.0],
            "small": [-9.0, 1.2, 3.0, 6.6],
            "ratio": [0.3, 0.4, np.nan, 0.9],
            "when": pd.to_datetime(["2020-01-02", None, "2020-01-03", "2020-01-01"]),
            "label": ["b", "a", "zzz", None],
            "flag": [False, True, True, np.nan],
        }
    )
    table = schema.to_arrow(generated)
    assert table.schema.equals(arrow_schema)
    assert table.column("count").to_pylist() == [2, 9, None, 9]
    assert table.column("when").to_pylist()[0] == pd.Timestamp("2020-01-02")
    assert table.column("small").to_pylist() == [-3, 1, 3, 7]
    assert table.column("label").to_pylist() == ["b", "a", None, None]


# -- save / load ---------------------------------------------------------------------------


def test_schema_save_load_round_trip(tmp_path, mixed_schema: Schema) -> None:
    path = tmp_path / "schema.json"
    mixed_schema.save(path)
    loaded = Schema.load(path)
    assert loaded == mixed_schema
    assert loaded.columns == mixed_schema.columns  # Column by Column, categories as tuples
    assert isinstance(loaded["region"].categories, tuple)
    assert loaded.arrow_schema.equals(mixed_schema.arrow_schema)  # not part of ==


def test_schema_round_trip_keeps_narrow_arrow_types(tmp_path) -> None:
    arrow_schema = pa.schema([("n", pa.int32()), ("t", pa.timestamp("ms"))])
    frame = pd.DataFrame(
        {
            "n": pd.array([1, 2, 3], dtype="Int32"),
            "t": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"]).astype(
                "datetime64[ms]"
            ),
        }
    )
    schema = infer_schema(frame, arrow_schema=arrow_schema)
    schema.save(tmp_path / "s.json")
    loaded = Schema.load(tmp_path / "s.json")
    assert loaded == schema
    assert loaded.arrow_schema.field("n").type == pa.int32()
    assert loaded.arrow_schema.field("t").type == pa.timestamp("ms")


# -- declared kinds whose values do not fit (issue 21: a boolean of yes/no published null) --


def test_a_declared_boolean_reads_yes_no_spellings_as_booleans():
    from generators.data.schema import apply_declared_kinds

    values = ["yes", "No", " Y", "n", "TRUE", "f", None]
    frame = pd.DataFrame({"churned": pd.array(values, "string")})
    out = apply_declared_kinds(frame, {"churned": "boolean"})
    assert out["churned"].dtype == "boolean"
    assert out["churned"].tolist() == [True, False, True, False, True, False, pd.NA]
    assert infer_schema(out, {"churned": "boolean"})["churned"].kind == "boolean"
    assert frame["churned"].dtype == "string"  # the input is not modified


def test_a_declared_boolean_with_other_values_is_refused_naming_them():
    frame = pd.DataFrame({"churned": pd.array(["yes", "no", "maybe", "yes"], "string")})
    with pytest.raises(DataError, match=r"column 'churned' is declared boolean.*'maybe'.*1 of 4"):
        infer_schema(frame, {"churned": "boolean"})


def test_integers_beyond_float_precision_are_refused_before_training():
    # 2**63 - 1 through float64 came back as the column's minimum (a wrap-round).
    frame = pd.DataFrame({"amount": pd.array([1, 2**63 - 1, 5], dtype="Int64")})
    with pytest.raises(
        DataError, match=r"column 'amount' holds integers up to 9223372036854775807"
    ):
        infer_schema(frame)
    ok = pd.DataFrame({"amount": pd.array([1, 2**53, -(2**53)], dtype="Int64")})
    assert infer_schema(ok)["amount"].kind == "numeric"
    assert infer_schema(frame, {"amount": "id"})["amount"].kind == "id"


@pytest.mark.parametrize("dtype", ["Int64", "UInt64", "Int32", "int64"])
def test_an_id_at_its_dtype_maximum_is_refused_before_training(dtype):
    from generators.base import first_fresh_id

    top = int(np.iinfo(dtype.lower()).max)
    with pytest.raises(DataError, match=r"column 'id': identifier .* leaves no room"):
        first_fresh_id(pd.Series(pd.array([1, top], dtype=dtype), name="id"))
    assert first_fresh_id(pd.Series(pd.array([1, 2**20], dtype=dtype), name="id")) == 2**20 + 1
