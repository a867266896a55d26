"""Rare-category merging, extreme-value clipping and the similarity filter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators import infer_schema, make_generator
from generators.data.schema import normalize_dtypes
from generators.data.split import split_holdout
from generators.errors import DataError
from validation.protection import (
    RARE_PLACEHOLDER,
    SimilarityFilter,
    clip_extremes,
    merge_rare_categories,
    sample_filtered,
)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(3)
    n = 600
    city = rng.choice(["big", "mid", "small"], size=n, p=[0.6, 0.35, 0.05]).astype(object)
    city[:3] = ["tiny-a", "tiny-b", "tiny-b"]  # 1 and 2 occurrences: rare below k=3
    frame = normalize_dtypes(
        pd.DataFrame(
            {
                "city": city,
                "code": rng.choice([1, 2, 99], size=n, p=[0.5, 0.497, 0.003]),
                "x": rng.normal(size=n),
                "y": rng.normal(size=n),
            }
        )
    )
    schema = infer_schema(frame, {"code": "categorical"})
    return frame, schema


def test_rare_categories_are_merged_and_survive_conform(table):
    frame, schema = table
    merged, new_schema, changed = merge_rare_categories(frame, schema, min_count=3)
    assert changed == {"city": 3}
    assert (merged["city"] == RARE_PLACEHOLDER).sum() == 3
    assert not merged["city"].isin(["tiny-a", "tiny-b"]).any()
    assert RARE_PLACEHOLDER in new_schema["city"].categories
    assert "tiny-a" not in new_schema["city"].categories
    # the placeholder is a category the output may hold, not an unseen value nulled by conform
    assert (new_schema.conform(merged)["city"] == RARE_PLACEHOLDER).sum() == 3
    # an integer categorical cannot hold a text placeholder: left alone
    assert merged["code"].equals(frame["code"])
    # the input is not modified
    assert frame["city"].isin(["tiny-a"]).sum() == 1


@pytest.fixture(scope="module")
def tails():
    """600 rows: `hours` (integers 20-60, a top-code spike of 40 rows at 99 and one
    singular 9,900), `score` (normal, one singular -50), and columns clipping must not
    touch: an identifier, an integer categorical with one odd code, and datetimes."""
    rng = np.random.default_rng(5)
    n = 600
    hours = rng.integers(20, 61, size=n)
    hours[:40] = 99
    hours[40] = 9_900
    score = rng.normal(size=n)
    score[41] = -50.0
    frame = normalize_dtypes(
        pd.DataFrame(
            {
                "row_id": np.arange(n) * 1_000 + 10**9,
                "hours": hours,
                "score": score,
                "code": np.r_[[999], rng.choice([1, 2, 3], size=n - 1)],
                "when": pd.Timestamp("2020-01-01")
                + pd.to_timedelta(np.r_[[30_000], rng.integers(0, 365, n - 1)], unit="D"),
            }
        )
    )
    schema = infer_schema(frame, {"code": "categorical", "row_id": "id"})
    return frame, schema


def test_clipping_takes_a_singular_extreme_to_the_top_code_and_keeps_the_spike(tails):
    frame, schema = tails
    clipped, new_schema, counts, bounds = clip_extremes(
        frame, schema, quantile=0.99, min_rows=5, seed=0
    )
    # The 40 rows at 99 are a spike, not an extreme: the bound, kept as they are.
    assert clipped.loc[40, "hours"] == 99 and (clipped["hours"].iloc[:40] == 99).all()
    assert counts["hours"] == 1 and bounds["hours"] == (None, 99.0)
    assert new_schema["hours"].maximum == 99.0
    assert clipped["hours"].dtype == frame["hours"].dtype == "Int64"
    # The rows that are not in a tail are untouched.
    body = frame["hours"].between(20, 60)
    assert clipped["hours"][body].equals(frame["hours"][body])
    # The score's singular low value is pulled in to a bound inside the real values.
    low, _ = bounds["score"]
    assert clipped.loc[41, "score"] == low >= frame["score"].drop(41).min()
    assert new_schema["score"].minimum == low
    # Identifiers, categoricals (whatever their dtype) and datetimes are left alone.
    for name in ("row_id", "code", "when"):
        assert clipped[name].equals(frame[name]) and name not in counts
    assert [c.kind for c in new_schema.columns] == [c.kind for c in schema.columns]
    assert list(clipped.dtypes) == list(frame.dtypes)
    assert frame.loc[40, "hours"] == 9_900  # the input is not modified


def test_clipping_is_seeded_and_its_quantile_noisy(tails):
    frame, schema = tails
    numeric = frame[["score"]]
    numeric_schema = infer_schema(numeric)
    first = clip_extremes(numeric, numeric_schema, 0.99, 5, seed=3)
    again = clip_extremes(numeric, numeric_schema, 0.99, 5, seed=3)
    assert first[0].equals(again[0]) and first[3] == again[3]
    # The bound is a noisy order statistic: other seeds put it at other ranks.
    highs = {
        clip_extremes(numeric, numeric_schema, 0.99, 5, seed=s)[3]["score"][1] for s in range(8)
    }
    assert len(highs) > 1


def test_similarity_filter_drops_copies_and_keeps_the_rest(table):
    frame, schema = table
    numeric_schema = infer_schema(frame[["x", "y"]])
    train, holdout = split_holdout(frame[["x", "y"]], 0.3, seed=0)
    similarity = SimilarityFilter(train, holdout, numeric_schema, quantile=0.05)
    # The threshold is the holdout's own 5% quantile: 5% of holdout rows fall under it,
    # give or take the one row the quantile interpolates at.
    share = similarity.too_close(holdout).mean()
    assert share == pytest.approx(0.05, abs=1.5 / len(holdout))
    # Exact copies are at distance 0: all flagged.
    assert similarity.too_close(train.iloc[:50]).all()


def test_sample_filtered_reaches_the_count_with_no_row_too_close(table):
    frame, _ = table
    data = frame[["x", "y"]]
    schema = infer_schema(data)
    train, holdout = split_holdout(data, 0.3, seed=0)
    generator = make_generator("gaussian_copula", {"default_distribution": "norm"})
    generator.fit(train, schema, seed=0)
    similarity = SimilarityFilter(train, holdout, schema, quantile=0.2)
    rows, dropped = sample_filtered(generator, 300, seed=5, similarity=similarity)
    assert len(rows) == 300 and dropped > 0
    assert not similarity.too_close(rows).any()
    again, dropped_again = sample_filtered(generator, 300, seed=5, similarity=similarity)
    assert again.equals(rows) and dropped_again == dropped


def test_sample_filtered_gives_up_clearly_on_a_copy(table):
    frame, _ = table
    data = frame[["x", "y"]]
    schema = infer_schema(data)
    train, holdout = split_holdout(data, 0.3, seed=0)
    copy = make_generator("copy").fit(train, schema, seed=0)
    similarity = SimilarityFilter(train, holdout, schema, quantile=0.05)
    with pytest.raises(DataError, match="similarity filter dropped"):
        sample_filtered(copy, 100, seed=0, similarity=similarity)


def test_privacy_report_on_a_two_column_table_and_an_all_missing_category(table):
    from validation.privacy import PrivacyPolicy, privacy_report

    frame, _ = table
    data = frame[["city", "x"]].copy()
    data.loc[data.index[:200], "city"] = pd.NA  # the training rows below see no city at all
    schema = infer_schema(data)
    train, holdout = data.iloc[:200].reset_index(drop=True), data.iloc[200:].reset_index(drop=True)
    synthetic = make_generator("uniform").fit(train, schema, seed=0).sample(150, seed=0)
    assert synthetic["city"].isna().all()
    report = privacy_report(train, holdout, synthetic, schema, PrivacyPolicy())
    assert "singling_out_multivariate.risk" in report.metrics  # 2 usable columns suffice
