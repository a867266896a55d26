"""Constraints: each kind catches a planted violation and passes a clean frame; config and
schema errors name the key; `sample_with_constraints` reaches n, repeats itself per seed,
keeps values unique across rounds and fails clearly when a constraint cannot be met."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.data.schema import infer_schema, normalize_dtypes
from generators.errors import ConfigError, DataError, NotFittedError
from generators.sampling.constraints import (
    Constraints,
    FixedCombinations,
    Inequality,
    Unique,
    ValueSet,
    parse_constraints,
    sample_with_constraints,
)
from generators.seeds import round_seed


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """A clean table: every constraint below holds on it."""
    frame = pd.DataFrame(
        {
            "order_id": np.arange(100, 140),
            "city": ["Paris", "Lyon", "Berlin", "Munich"] * 10,
            "country": ["FR", "FR", "DE", "DE"] * 10,
            "start": pd.date_range("2024-01-01", periods=40, freq="D"),
            "capital_loss": [0, 5, 10, 0] * 10,
            "capital_gain": [0, 10, 10, 7] * 10,
            "age": list(range(20, 60)),
            "grade": ["a", "b", "c", "a"] * 10,
        }
    )
    frame["end"] = frame["start"] + pd.to_timedelta([0, 1, 2, 3] * 10, unit="D")
    frame.loc[3, "capital_gain"] = None  # a missing value never violates
    return normalize_dtypes(frame)


@pytest.fixture(scope="module")
def schema(table):
    return infer_schema(table)


CONFIG = [
    {"kind": "fixed_combinations", "columns": ["city", "country"]},
    {"kind": "inequality", "low": "capital_loss", "high": "capital_gain"},
    {"kind": "inequality", "low": "start", "high": "end"},
    {"kind": "range", "column": "age", "min": 18, "max": 90},
    {"kind": "range", "column": "start", "min": "2023-06-01"},
    {"kind": "value_set", "column": "grade", "values": ["a", "b", "c"]},
    {"kind": "unique", "column": "order_id"},
]


@pytest.fixture(scope="module")
def fitted(table, schema) -> Constraints:
    return Constraints(CONFIG).fit(table, schema)


def test_a_clean_frame_violates_nothing(fitted, table) -> None:
    assert fitted.violations(table) == {
        "fixed_combinations.city.country": 0,
        "inequality.capital_loss.capital_gain": 0,
        "inequality.start.end": 0,
        "range.age": 0,
        "range.start": 0,
        "value_set.grade": 0,
        "unique.order_id": 0,
    }
    assert not fitted.mask(table).any()


@pytest.mark.parametrize(
    ("name", "plant"),
    [
        ("fixed_combinations.city.country", {"city": "Paris", "country": "DE"}),
        ("inequality.capital_loss.capital_gain", {"capital_loss": 11, "capital_gain": 10}),
        ("inequality.start.end", {"end": pd.Timestamp("2023-12-31")}),
        ("range.age", {"age": 95}),
        ("range.start", {"start": pd.Timestamp("2023-01-01"), "end": pd.Timestamp("2023-01-02")}),
        ("value_set.grade", {"grade": "z"}),
        ("unique.order_id", {"order_id": 100}),  # row 0's id again
    ],
)
def test_each_kind_catches_a_planted_violation(fitted, table, name, plant) -> None:
    frame = table.copy()
    for column, value in plant.items():
        frame.loc[7, column] = value
    counts = fitted.violations(frame)
    assert counts[name] == 1
    assert sum(counts.values()) == 1, counts  # and no other constraint fires
    assert np.flatnonzero(fitted.mask(frame)).tolist() == [7]


def test_strict_inequality_rejects_equal_values() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, None], "b": [1.0, 3.0, 0.0]})
    assert Inequality(kind="inequality", low="a", high="b").violations(frame).tolist() == [
        False,
        False,
        False,
    ]
    strict = Inequality(kind="inequality", low="a", high="b", strict=True)
    assert strict.violations(frame).tolist() == [True, False, False]


def test_unique_flags_every_repeat_after_the_first_and_ignores_missing() -> None:
    frame = pd.DataFrame({"code": pd.array(["x", "y", "x", None, None, "x"], dtype="string")})
    flagged = Unique(kind="unique", column="code").violations(frame)
    assert flagged.tolist() == [False, False, True, False, False, True]


def test_value_set_on_numbers_and_missing_values() -> None:
    frame = pd.DataFrame({"n": pd.array([1, 2, 3, None], dtype="Int64")})
    rule = ValueSet(kind="value_set", column="n", values=[1, 2])
    assert rule.violations(frame).tolist() == [False, False, True, False]


def test_fixed_combinations_must_be_fitted_first(table) -> None:
    rule = FixedCombinations(kind="fixed_combinations", columns=["city", "country"])
    with pytest.raises(NotFittedError):
        rule.violations(table)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([{"kind": "range", "column": "age"}], "constraints[0]: Value error, give min, max"),
        ([{"kind": "sum", "column": "age"}], "constraints[0]"),
        ([{"kind": "unique", "column": "age", "extra": 1}], "constraints[0].extra"),
        ([{"kind": "fixed_combinations", "columns": ["a"]}], "constraints[0].columns"),
    ],
)
def test_config_errors_name_the_key(config, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_constraints(config)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "range", "column": "agee", "min": 1}, "constraints[1].column: column 'agee'"),
        ({"kind": "range", "column": "city", "min": 1}, "constraints[1].column: column 'city' is"),
        (
            {"kind": "inequality", "low": "age", "high": "start"},
            "constraints[1].high: column 'start' is datetime",
        ),
        (
            {"kind": "fixed_combinations", "columns": ["city", "nope"]},
            "constraints[1].columns[1]: column 'nope'",
        ),
        ({"kind": "range", "column": "age", "min": 9, "max": 1}, "constraints[1].max"),
        ({"kind": "value_set", "column": "age", "values": ["x"]}, "constraints[1].values[0]"),
    ],
)
def test_schema_errors_name_the_key_and_column(table, schema, config, message) -> None:
    constraints = Constraints([{"kind": "unique", "column": "order_id"}, config])
    with pytest.raises(ConfigError) as error:
        constraints.fit(table, schema)
    assert message in str(error.value)


# -- sampling with constraints ---------------------------------------------------------------
def noisy_draw(rows: int, seed: int) -> pd.DataFrame:
    """A 'generator' whose raw output violates: about 30% of rows have x > 0.7, and code
    repeats across calls (only 500 values)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.random(rows), "code": rng.integers(0, 500, rows)})


@pytest.fixture(scope="module")
def noisy_constraints() -> Constraints:
    frame = noisy_draw(50, 0)
    return Constraints(
        [{"kind": "range", "column": "x", "max": 0.7}, {"kind": "unique", "column": "code"}]
    ).fit(frame, infer_schema(frame))


def test_sampling_reaches_n_valid_rows_and_repeats_per_seed(noisy_constraints) -> None:
    assert noisy_constraints.mask(noisy_draw(300, 1)).mean() > 0.25  # the raw draw violates
    frame = sample_with_constraints(noisy_draw, 300, 1, noisy_constraints)
    assert len(frame) == 300
    assert not noisy_constraints.mask(frame).any()
    assert frame["code"].is_unique  # across rounds too
    again = sample_with_constraints(noisy_draw, 300, 1, noisy_constraints)
    pd.testing.assert_frame_equal(frame, again)
    other = sample_with_constraints(noisy_draw, 300, 2, noisy_constraints)
    assert not frame.equals(other)


def test_round_zero_is_the_plain_draw_and_later_seeds_differ() -> None:
    assert round_seed(5, 0) == 5
    assert len({round_seed(5, r) for r in range(10)}) == 10
    always = Constraints([{"kind": "range", "column": "x", "min": 0}])
    always.fit(noisy_draw(10, 0), infer_schema(noisy_draw(10, 0)))
    pd.testing.assert_frame_equal(
        sample_with_constraints(noisy_draw, 40, 3, always), noisy_draw(40, 3)
    )


def test_an_impossible_constraint_is_a_clear_error() -> None:
    frame = noisy_draw(50, 0)
    impossible = Constraints([{"kind": "range", "column": "x", "min": 2.0}])
    impossible.fit(frame, infer_schema(frame))
    with pytest.raises(DataError) as error:
        sample_with_constraints(noisy_draw, 100, 0, impossible, max_rounds=4)
    message = str(error.value)
    assert "only 0 of" in message and "range.x rejected 100.0%" in message
    assert "loosen or drop" in message


def test_unique_needs_more_distinct_values_than_exist(noisy_constraints) -> None:
    """Only 500 codes exist: 600 unique rows cannot be drawn."""
    with pytest.raises(DataError, match=r"unique\.code rejected"):
        sample_with_constraints(noisy_draw, 600, 0, noisy_constraints, max_rounds=6)
