"""Fidelity scores: the single-column complements and the report built from them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from generators.schema import Schema
from generators.tables import split_holdout
from validation.fidelity import (
    column_scores,
    correlation_similarity,
    fidelity_report,
    ks_complement,
    tv_complement,
)

# -- ks_complement -------------------------------------------------------------------------


def test_ks_complement_of_identical_samples_is_one() -> None:
    values = pd.Series([3.5, 1.0, None, 7.25, 1.0, 2.0], dtype="Float64")
    assert ks_complement(values, values.copy()) == 1.0
    assert ks_complement(values, values.sample(frac=1.0, random_state=1)) == 1.0


def test_ks_complement_of_disjoint_ranges_is_zero() -> None:
    low = pd.Series(np.arange(10, dtype=float))
    high = pd.Series(np.arange(100, 110, dtype=float))
    assert ks_complement(low, high) == 0.0
    assert ks_complement(high, low) == 0.0


def test_ks_complement_known_value() -> None:
    # Empirical CDFs of {1,2,3,4} and {3,4,5,6} differ by at most 1/2 (at x = 2).
    assert ks_complement(pd.Series([1, 2, 3, 4]), pd.Series([3, 4, 5, 6])) == 0.5


def test_ks_complement_ignores_missing_values() -> None:
    with_gaps = pd.Series([1, None, 2, None, 3], dtype="Int64")
    without = pd.Series([1, 2, 3], dtype="Int64")
    assert ks_complement(with_gaps, without) == 1.0


def test_ks_complement_on_datetimes() -> None:
    early = pd.Series(pd.to_datetime(["2020-01-01", "2020-01-02", None]))
    late = pd.Series(pd.to_datetime(["2021-01-01", "2021-01-02"]))
    assert ks_complement(early, early) == 1.0
    assert ks_complement(early, late) == 0.0


# -- tv_complement -------------------------------------------------------------------------


def test_tv_complement_of_identical_samples_is_one() -> None:
    values = pd.Series(["a", "b", None, "a", "c"], dtype="string")
    assert tv_complement(values, values[::-1]) == 1.0


def test_tv_complement_of_disjoint_categories_is_zero() -> None:
    score = tv_complement(pd.Series(["a", "b"]), pd.Series(["c", "d", "c"]))
    assert score == pytest.approx(0.0, abs=1e-12)


def test_tv_complement_counts_missing_as_a_category() -> None:
    # {a: 1/2, missing: 1/2} vs {a: 1}: total variation 1/2.
    real = pd.Series(["a", None], dtype="string")
    synthetic = pd.Series(["a", "a"], dtype="string")
    assert tv_complement(real, synthetic) == pytest.approx(0.5)


def test_tv_complement_treats_booleans_like_categories() -> None:
    real = pd.Series([True, True, False, False], dtype="boolean")
    synthetic = pd.Series([True, True, True, False], dtype="boolean")
    assert tv_complement(real, synthetic) == pytest.approx(0.75)


# -- the report ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split(fidelity_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_holdout(fidelity_frame, 0.3, seed=17)


def _permute_each_column(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {name: frame[name].to_numpy()[rng.permutation(len(frame))] for name in frame.columns}
    ).astype(frame.dtypes.to_dict())


def test_report_of_a_real_sample_matches_its_holdout_reference(
    split, fidelity_schema: Schema
) -> None:
    train, holdout = split
    report = fidelity_report(train, holdout, holdout.copy(), fidelity_schema)
    assert report.name == "fidelity" and report.passed
    metrics = report.metrics
    assert metrics["column_shapes"] == metrics["column_shapes_holdout"]
    assert metrics["column_pair_trends"] == metrics["column_pair_trends_holdout"]
    # id columns are not scored; every other column is.
    assert set(report.details["columns"]) == set(fidelity_schema.names) - {"customer_id"}


def test_permuting_columns_independently_breaks_pair_trends_not_shapes(
    split, fidelity_schema: Schema
) -> None:
    train, holdout = split
    good = fidelity_report(train, holdout, holdout.copy(), fidelity_schema).metrics
    broken = fidelity_report(
        train, holdout, _permute_each_column(holdout, seed=2), fidelity_schema
    ).metrics
    # Each column keeps its values, so every single-column score is unchanged ...
    assert broken["column_shapes"] == pytest.approx(good["column_shapes"])
    # ... but the pair trends drop.
    assert good["column_pair_trends"] > broken["column_pair_trends"]

    # How far, derived from the data: the only numeric pair is (age, income) with real r.
    # A real holdout's r differs from train's by at most 4 standard errors of a difference
    # of two sample correlations, (1 - r^2) * sqrt(1/n_h + 1/n_t); an independent
    # permutation has |r| <= 4/sqrt(n_h).
    names = fidelity_schema.names_of("numeric")
    assert names == ["age", "income"]  # precondition for the single-pair arithmetic
    r = train[names].astype("float64").corr().iloc[0, 1]
    n_t, n_h = len(train), len(holdout)
    assert good["column_pair_trends"] >= 1 - 4 * (1 - r**2) * math.sqrt(1 / n_h + 1 / n_t) / 2
    assert broken["column_pair_trends"] <= 1 - (abs(r) - 4 / math.sqrt(n_h)) / 2


def test_constant_columns_break_column_shapes(split, fidelity_schema: Schema) -> None:
    train, holdout = split
    constant = holdout.copy()
    expected = {}
    for column in fidelity_schema.columns:
        values = train[column.name].dropna()
        if column.kind in ("numeric", "datetime"):
            # A point mass at the median m: the KS statistic is max(F(m-), 1 - F(m)) of the
            # real (train) ECDF F, missing values ignored.
            m = values.sort_values().iloc[len(values) // 2]
            constant[column.name] = m
            expected[column.name] = 1 - max((values < m).mean(), 1 - (values <= m).mean())
        elif column.kind in ("categorical", "boolean"):
            # Everything in the most common level: TVComplement is that level's real share
            # (missing values count in the denominator as a level of their own).
            mode = values.mode().iloc[0]
            constant[column.name] = mode
            expected[column.name] = float((train[column.name] == mode).fillna(False).mean())
    good = fidelity_report(train, holdout, holdout.copy(), fidelity_schema)
    broken = fidelity_report(train, holdout, constant, fidelity_schema)
    assert broken.details["columns"] == pytest.approx(expected)
    assert broken.metrics["column_shapes"] == pytest.approx(np.mean(list(expected.values())))
    assert broken.metrics["column_shapes"] < good.metrics["column_shapes"]

    # A real holdout scores high, with a tolerance derived from the sizes: KS statistics
    # stay under 1.95 * sqrt((n + m) / (n m)) (alpha = 0.001); each category share within
    # 4 standard errors of a difference of two proportions.
    n_t, n_h = len(train), len(holdout)
    scores = column_scores(train, holdout, fidelity_schema)
    for column in fidelity_schema.columns:
        if column.kind in ("numeric", "datetime"):
            floor = 1 - 1.95 * math.sqrt((n_t + n_h) / (n_t * n_h))
        elif column.kind in ("categorical", "boolean"):
            shares = (
                train[column.name].astype("string").fillna("<missing>").value_counts(normalize=True)
            )
            floor = 1 - 0.5 * sum(4 * math.sqrt(p * (1 - p) * (1 / n_t + 1 / n_h)) for p in shares)
        else:
            continue
        assert scores[column.name] >= floor, (column.name, scores[column.name], floor)


def test_correlation_similarity_needs_two_numeric_columns(split, fidelity_schema: Schema) -> None:
    train, holdout = split
    one_numeric = Schema(
        tuple(c for c in fidelity_schema.columns if c.name != "income"),
        fidelity_schema.arrow_schema,
    )
    assert correlation_similarity(train, holdout, one_numeric) is None
    metrics = fidelity_report(train, holdout, holdout, one_numeric).metrics
    assert "column_pair_trends" not in metrics
    # An exactly reversed relationship is the worst case: 1 - |r - (-r)| / 2 = 1 - |r|.
    flipped = holdout.copy()
    flipped["income"] = -holdout["income"]
    r = holdout[["age", "income"]].astype("float64").corr().iloc[0, 1]
    assert correlation_similarity(holdout, flipped, fidelity_schema) == pytest.approx(1 - abs(r))
